"""Runs the shared scenario files (SPEC.md §9) through the public Python API.

Mirrors the reference runner (tests/rust/tests/scenarios.rs) step for step: the
same defaults (seed 0, ``at`` carried over, ``events`` = events since the
previous ``events`` step), the same transcript lines, the same checks.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, Optional

import waypost

Line = dict[str, Any]


def scenario_dir() -> Path:
    env = os.environ.get("WAYPOST_SCENARIOS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "tests" / "scenarios"


def scenario_files() -> list[Path]:
    return sorted(scenario_dir().glob("*.json"))


class Runner:
    def __init__(self, config: dict[str, Any]) -> None:
        config = dict(config)
        config.setdefault("seed", 0)
        self.reg = waypost.Registry(**config)
        self.last_event = 0

    def run(self, step: dict[str, Any], at: int) -> Line:
        op = step["op"]
        reg = self.reg
        out: Line = {}
        if op == "register":
            reg.register_spec(step["instance"], now=at)
        elif op == "deregister":
            reg.deregister(step["id"], now=at)
        elif op == "heartbeat":
            reg.heartbeat(step["id"], now=at)
        elif op == "begin":
            reg.begin(step["id"], now=at)
        elif op == "end":
            reg.end(step["id"], now=at)
        elif op == "check":
            reg.report_check(step["id"], step["status"], now=at)
        elif op == "outcome":
            reg.report_outcome(step["id"], step["success"], now=at)
        elif op == "drain":
            reg.drain(step["id"], step.get("on", True), now=at)
        elif op == "tick":
            out["events"] = [e.to_dict() for e in reg.tick(now=at)]
        elif op == "discover":
            found = reg.discover(
                step["service"],
                all=step.get("all", False),
                tags=step.get("tags"),
                meta=step.get("meta"),
                now=at,
            )
            out["ids"] = [i.id for i in found]
            out["health"] = [h.value for h in found.health]
            out["panic"] = found.panic
        elif op in ("pick", "picks"):
            options: dict[str, Any] = dict(
                key=step.get("key"), zone=step.get("zone"), tags=step.get("tags"), meta=step.get("meta")
            )
            service, strategy = step["service"], step["strategy"]
            if op == "pick":
                result = reg.pick_result(service, strategy, now=at, **options)
                out["id"] = result.instance.id
                out["panic"] = result.panic
            else:
                prefix: Optional[str] = step.get("key_prefix")
                ids = []
                for i in range(step.get("count", 1)):
                    if prefix is not None:
                        options["key"] = f"{prefix}{i}"
                    ids.append(reg.pick(service, strategy, now=at, **options).id)
                out["ids"] = ids
        elif op == "events":
            events = reg.events_since(self.last_event)
            if events:
                self.last_event = events[-1].index
            out["events"] = [e.to_dict() for e in events]
        elif op == "get":
            view = reg.get(step["id"], now=at)
            out.update(
                id=view.id,
                service=view.service,
                health=view.health.value,
                modify_index=view.modify_index,
                inflight=view.inflight,
            )
            if view.source is not None:
                out.update(source=view.source, held=view.held)
        elif op == "services":
            out["services"] = reg.services(now=at)
        elif op == "due_checks":
            out["ids"] = reg.due_checks(now=at)
        elif op == "snapshot_restore":
            self.reg = waypost.Registry.restore(reg.snapshot())
        elif op == "sync":
            out["report"] = reg.sync(step["source"], step["service"], step["entries"], now=at)
        elif op == "source_put":
            out["report"] = reg.source_put(step["source"], step["entry"], now=at)
        elif op == "source_delete":
            out["report"] = reg.source_delete(step["source"], step["id"], now=at)
        elif op == "source_add":
            reg.source_add(step["name"], step["options"])
        elif op == "source_request":
            out["request"] = reg.source_request(step["name"])
        elif op in FEED_NAMES:
            payload = step["body"] if op == "source_feed" and "body_base64" not in step else step.get("payload")
            # A binary payload (a gRPC answer) comes as `body_base64`.
            body: str | bytes = (base64.b64decode(step["body_base64"]) if "body_base64" in step
                                 else payload_text(payload))
            out["report"] = reg.source_feed(
                step.get("name", FEED_NAMES[op]), body, now=at,
                status=step.get("status", 200), index=step.get("index"),
            )
        elif op == "k8s_watch":
            out["report"] = reg.source_feed(
                step.get("name", "k8s"), watch_text(step["payload"]), now=at, status=step.get("status", 200),
            )
        else:
            raise AssertionError(f"unknown op {op!r}")
        return out


# The feed ops and the source each defaults to.
FEED_NAMES = {
    "source_feed": "etcd", "etcd_range": "etcd", "etcd_watch": "etcd",
    "consul_health": "consul", "k8s_slices": "k8s",
}


def payload_text(value: Any) -> str:
    """A feed payload as the core reads it: a string as it is, any other JSON value written out."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def watch_text(value: Any) -> str:
    """A watch message: an array of events becomes one JSON line each."""
    if isinstance(value, list):
        return "\n".join(payload_text(v) for v in value)
    return payload_text(value)


def check_expect(name: str, i: int, expect: dict[str, Any], line: Line) -> None:
    ctx = f"{name} step {i}: got {json.dumps(line)}"
    if "error" in expect:
        assert not line["ok"], f"{ctx}: expected error {expect['error']}"
        assert line["error"] == expect["error"], ctx
    else:
        assert line["ok"], f"{ctx}: expected success"
    for key, want in expect.items():
        if key in ("error", "tolerance"):
            continue
        if key in ("ids", "id", "health", "panic", "services", "source", "held"):
            assert line.get(key) == want, f"{ctx}: `{key}`"
        elif key in ("report", "request"):
            got_obj = line.get(key) or {}
            for field, value in want.items():
                assert got_obj.get(field) == value, f"{ctx}: `{key}.{field}`"
        elif key == "events":
            got = line["events"]
            assert len(got) == len(want), f"{ctx}: number of events"
            for g, w in zip(got, want):
                for field, value in w.items():
                    assert g.get(field) == value, f"{ctx}: event field `{field}` of {w}"
        elif key == "counts":
            counts: dict[str, int] = {}
            for id in line["ids"]:
                counts[id] = counts.get(id, 0) + 1
            assert counts == {k: v for k, v in want.items() if v > 0}, f"{ctx}: counts"
        elif key == "shares":
            ids = line["ids"]
            tolerance = expect.get("tolerance", 0.05)
            for id, share in want.items():
                got_share = ids.count(id) / len(ids)
                assert abs(got_share - share) <= tolerance, f"{ctx}: share of {id} is {got_share}, want {share}±{tolerance}"
        else:
            raise AssertionError(f"{ctx}: unknown expectation `{key}`")


def run_file(path: Path) -> list[Line]:
    doc = json.loads(path.read_text())
    runner = Runner(doc.get("config") or {})
    at = 0
    transcript: list[Line] = []
    for i, step in enumerate(doc["steps"]):
        if "at" in step:
            at = step["at"]
        line: Line = {"step": i, "op": step["op"]}
        try:
            fields = runner.run(step, at)
        except waypost.Error as e:
            line.update(ok=False, error=e.code)
        else:
            line["ok"] = True
            line.update(fields)
        if "expect" in step:
            check_expect(path.name, i, step["expect"], line)
        else:
            assert line["ok"], f"{path.name} step {i}: {json.dumps(line)}"
        transcript.append(line)
    return transcript


def write_transcript(path: Path, transcript: list[Line]) -> None:
    root = os.environ.get("WAYPOST_TRANSCRIPTS")
    if not root:
        return
    out = Path(root) / "python"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{path.stem}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in transcript))

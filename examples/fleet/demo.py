"""waypost on a real fleet: etcd, services in three languages, a gateway.

    make demo            # the story, about a minute, then everything stops
    make demo SERVE=1    # the same, then the fleet keeps running until Ctrl-C

Starts on 127.0.0.1 only, on free ports: etcd (temporary data directory),
two instances each of a Python, a Node and a Go service (each registers
itself in etcd under a lease), a gateway that mirrors etcd into a waypost
registry and forwards requests, a light load (50 requests/s) and a dashboard
page. Then it plays a story and checks each step: a failed check exits
non-zero. Every process it starts runs in its own process group and is
stopped on exit, on Ctrl-C and on failure.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from fleet import RATE, SERVICES, Load, Processes, free_port, get_json, ms  # noqa: E402
from gateway import Gateway  # noqa: E402

TTL_S = 3


class StoryFailed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise StoryFailed(what)
    say(f"  ✔ {what}")


T0 = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {line}", flush=True)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale = 0.5 if args.quick else 1.0
        self.tmp = Path(tempfile.mkdtemp(prefix="waypost-demo-"))
        self.procs = Processes(self.tmp)
        self.ports = {name: free_port() for name in
                      ["etcd", "etcd-peer", "gateway", "dashboard",
                       "py-1", "py-2", "node-1", "node-2", "go-1", "go-2"]}
        self.etcd = f"http://127.0.0.1:{self.ports['etcd']}"
        self.gateway_url = f"http://127.0.0.1:{self.ports['gateway']}"
        self.observer: Optional[Gateway] = None
        self.observer_stop = threading.Event()
        self.load: Optional[Load] = None
        self.dashboard: Optional[Any] = None
        self.propagation: list[tuple[str, str, Optional[int], Optional[int]]] = []
        self.serving = False

    # --- starting things -------------------------------------------------
    def start_etcd(self) -> None:
        p = self.ports
        self.procs.start("etcd", cwd=ROOT, argv=[
            shutil.which("etcd") or "/usr/bin/etcd", "--name", "demo", "--data-dir", str(self.tmp / "etcd"),
            "--listen-client-urls", self.etcd, "--advertise-client-urls", self.etcd,
            "--listen-peer-urls", f"http://127.0.0.1:{p['etcd-peer']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{p['etcd-peer']}",
            "--initial-cluster", f"demo=http://127.0.0.1:{p['etcd-peer']}", "--log-level", "warn",
            "--logger", "zap"])
        self.wait_for(lambda: get_json(self.etcd + "/health").get("health") == "true", 15, "etcd to answer")

    def start_instance(self, id: str) -> None:
        lang = {"py": "python", "node": "node", "go": "go"}[id.split("-")[0]]
        n = int(id.split("-")[1])
        common = ["--id", id, "--service", SERVICES[lang], "--port", str(self.ports[id]), "--etcd", self.etcd,
                  "--weight", "1" if n == 1 else "3", "--zone", "zone-a" if n == 1 else "zone-b",
                  "--ttl", str(TTL_S)]
        if lang == "python":
            argv = [sys.executable, str(HERE / "service.py"), *common]
        elif lang == "node":
            argv = ["node", str(HERE / "service.mjs"), *common]
        else:
            argv = [str(self.args.go_service), *["-" + a[2:] if a.startswith("--") else a for a in common]]
        self.procs.start(id, argv, cwd=HERE)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if condition():
                    return time.monotonic() - start
            time.sleep(0.02)
        raise StoryFailed(f"timed out after {timeout:.0f} s waiting for {what}")

    def gateway_state(self) -> dict[str, Any]:
        return dict(get_json(self.gateway_url + "/_state"))

    def service_mirror(self, id: str) -> dict[str, Any]:
        """The fleet as a Go or Node service mirrors it (its /mirror)."""
        return dict(get_json(f"http://127.0.0.1:{self.ports[id]}/mirror"))

    def mirrors(self) -> dict[str, dict[str, str]]:
        """id → health in every mirror the demo runs."""
        gw = {i["id"]: i["health"] for i in self.gateway_state()["instances"]}
        assert self.observer is not None
        return {"gateway (Python)": gw, "observer (Python)": self.observer.health(),
                "node-1 (Node)": dict(self.service_mirror("node-1")["instances"]),
                "go-1 (Go)": dict(self.service_mirror("go-1")["instances"])}

    def membership(self) -> dict[str, dict[str, bool]]:
        """What etcd decides, per mirror: the ids and which are draining (ejection is each mirror's own)."""
        return {name: {id: health == "draining" for id, health in m.items()} for name, m in self.mirrors().items()}

    def seen_at(self, id: str, to: Optional[str], after: int) -> dict[str, Optional[int]]:
        """When each mirror first saw `id` become `to` (None: gone) after `after`."""
        assert self.observer is not None
        out: dict[str, Optional[int]] = {}
        for name, changes in [("gateway (Python)", self.gateway_state()["changes"]),
                              ("observer (Python)", list(self.observer.changes)),
                              ("node-1 (Node)", self.service_mirror("node-1")["changes"]),
                              ("go-1 (Go)", self.service_mirror("go-1")["changes"])]:
            hits = [c["t"] for c in changes if c["id"] == id and c["to"] == to and c["t"] >= after]
            out[name] = min(hits) if hits else None
        return out

    def wait_all_mirrors(self, id: str, to: Optional[str], after: int, timeout: float) -> dict[str, Optional[int]]:
        self.wait_for(lambda: all(v is not None for v in self.seen_at(id, to, after).values()), timeout,
                      f"every mirror to see {id} → {to or 'gone'}")
        return self.seen_at(id, to, after)

    def note(self, change: str, action_ms: int, seen: dict[str, Optional[int]]) -> int:
        times = [t - action_ms for t in seen.values() if t is not None]
        for mirror, t in seen.items():
            say(f"    {mirror:<18} saw it {0 if t is None else t - action_ms:5d} ms after the change")
        self.propagation.append((change, ", ".join(seen), min(times), max(times)))
        return max(times)

    def admin(self, id: str, path: str) -> Any:
        return get_json(f"http://127.0.0.1:{self.ports[id]}{path}")

    def phase(self, seconds: float) -> tuple[int, int]:
        start = ms()
        time.sleep(seconds * self.scale)
        return start, ms()

    # --- the story -------------------------------------------------------
    def run(self) -> None:
        self.start_fleet()
        self.story_spread()
        self.story_kill()
        self.story_eject()
        self.story_drain()
        self.story_etcd_restart()
        self.story_return()
        assert self.load is not None
        self.load.stop()
        self.summary()

    def start_fleet(self) -> None:
        say(f"waypost demo: everything on 127.0.0.1, logs in {self.tmp}")
        self.start_etcd()
        say(f"etcd {self.etcd} (data dir {self.tmp / 'etcd'})")
        started = ms()
        for id in ["py-1", "py-2", "node-1", "node-2", "go-1", "go-2"]:
            self.start_instance(id)
        self.procs.start("gateway", [sys.executable, str(HERE / "gateway.py"), "--port", str(self.ports["gateway"]),
                                     "--etcd", self.etcd], cwd=HERE)
        self.observer = Gateway([self.etcd])
        self.observer.mirror.start()
        threading.Thread(target=self.observer.watch, args=(self.observer_stop,), daemon=True).start()
        self.start_dashboard()
        took = self.wait_for(lambda: all(len(m) == 6 for m in self.mirrors().values()), 20,
                             "six instances in every mirror")
        state = self.gateway_state()
        say(f"6 instances registered (2 per language, weights 1 and 3, lease TTL {TTL_S} s) and mirrored by the "
            f"gateway ({state['mirror']}) in {ms() - started} ms ({took:.1f} s of waiting)")
        self.load = Load(self.gateway_url)
        self.load.start()
        say(f"load: {RATE} requests/s through the gateway {self.gateway_url}, round robin over 3 services")

    def story_spread(self) -> None:
        say("① traffic spreads by weight (smooth weighted round robin, weights 1 : 3)")
        a, b = self.phase(6)
        assert self.load is not None
        counts = Load.counts(self.load.since(a, b))
        for lang, (one, three) in {"python": ("py-1", "py-2"), "node": ("node-1", "node-2"),
                                   "go": ("go-1", "go-2")}.items():
            total = counts[one] + counts[three]
            share = counts[three] / total if total else 0
            say(f"    {SERVICES[lang]:<13} {one}: {counts[one]:4d}   {three}: {counts[three]:4d}   "
                f"({share:.0%} to the weight-3 instance)")
            check(total > 0 and 0.65 <= share <= 0.85, f"{SERVICES[lang]} splits 1 : 3 (75% ± 10)")

    def story_kill(self) -> None:
        say("② py-2 is killed with SIGKILL: no goodbye, its lease must run out")
        t = ms()
        self.procs.kill("py-2")
        seen = self.wait_all_mirrors("py-2", None, t, TTL_S + 5)
        worst = self.note("py-2 SIGKILL → gone", t, seen)
        check(worst <= (TTL_S + 1) * 1000, f"py-2 left every mirror within TTL + 1 s ({worst} ms ≤ {TTL_S + 1} s)")
        gone = max(v for v in seen.values() if v is not None)
        assert self.load is not None
        before = self.load.since(t, gone)
        a, b = self.phase(4)
        after = self.load.since(gone)
        counts = Load.counts(self.load.since(a, b))
        say(f"    while the lease ran: {len([r for r in before if r[1] == 'hello-python'])} python requests, "
            f"{Load.errors(before)} failed at the client (the gateway retried on py-1)")
        say(f"    after: py-1 {counts['py-1']}, py-2 {counts['py-2']}")
        check(counts["py-2"] == 0 and counts["py-1"] > 0, "traffic moved to py-1")
        check(Load.errors(after) == 0, "no client request failed after the gateway saw the change")

    def story_eject(self) -> None:
        say("③ node-2 starts failing half of its requests")
        t = ms()
        self.admin("node-2", "/admin/fail?rate=0.5")
        ejected = self.wait_for(lambda: self.seen_at("node-2", "ejected", t)["gateway (Python)"] is not None, 20,
                                "the gateway to eject node-2")
        state = self.gateway_state()
        node2 = next(i for i in state["instances"] if i["id"] == "node-2")
        say(f"    ejected {ejected:.1f} s later after {node2['failed']} failed calls in all "
            f"(3 in a row eject), for {(node2['ejected_until'] or 0) - ms()} ms more")
        ej_at = self.seen_at("node-2", "ejected", t)["gateway (Python)"] or 0
        self.wait_for(lambda: self.seen_at("node-2", "healthy", ej_at)["gateway (Python)"] is not None, 25,
                      "node-2 back on probation")
        back = self.seen_at("node-2", "healthy", ej_at)["gateway (Python)"] or 0
        say(f"    back on probation {back - ej_at} ms after the ejection (base ejection 3 s)")
        # A failed probation call ejects again at once for n × base (SPEC §3),
        # and half of node-2's calls fail: the n-th return comes after
        # 3 s × (1 + 2 + … + n), however briefly the earlier ones lasted.
        rounds = [n for n in (1, 2, 3) if 3_000 * n * (n + 1) // 2 - 300 <= back - ej_at <= 3_000 * n * (n + 1) // 2 + 1_000]
        if rounds and rounds[0] > 1:
            say(f"    its probation call failed {rounds[0] - 1} time(s), each ejecting it again for n × 3 s")
        check(bool(rounds), "the ejection lasted its base time, then probation")
        self.admin("node-2", "/admin/fail?rate=0")
        say("    node-2 recovers (fail rate 0): the next success closes the circuit")
        a, b = self.phase(3)
        assert self.load is not None
        rows = self.load.since(t, b)
        check(Load.errors(rows) == 0, f"clients saw no error in {len(rows)} requests: each failed call was retried "
              "on another instance")

    def story_drain(self) -> None:
        say("④ go-2 is drained: it marks itself `maintenance` in etcd")
        t = ms()
        self.admin("go-2", "/admin/drain?on=1")
        seen = self.wait_all_mirrors("go-2", "draining", t, 5)
        self.note("go-2 drain → draining", t, seen)
        drained = max(v for v in seen.values() if v is not None)
        time.sleep(0.2)
        a, b = self.phase(4)
        assert self.load is not None
        counts = Load.counts(self.load.since(drained + 200))
        say(f"    after: go-1 {counts['go-1']}, go-2 {counts['go-2']}")
        check(counts["go-2"] == 0 and counts["go-1"] > 0, "no new traffic to go-2")

    def story_etcd_restart(self) -> None:
        say("⑤ etcd is killed with SIGKILL and restarted on the same data directory")
        before = self.membership()
        revision = self.gateway_state()["revision"]
        t = ms()
        self.procs.kill("etcd")
        a, b = self.phase(4)
        assert self.load is not None
        down = self.load.since(a, b)
        say(f"    etcd down {(b - t) / 1000:.1f} s: {len(down)} requests, {Load.errors(down)} failed; "
            f"mirrors kept serving from memory")
        check(Load.errors(down) == 0, "the fleet carried on while etcd was down")
        check(self.membership() == before, "every mirror kept all 5 instances and their etcd status")
        r = ms()
        self.start_etcd()
        say(f"    etcd back after {ms() - r} ms")
        self.wait_for(lambda: self.gateway_state()["mirror_error"] is None and self.observer is not None
                      and self.observer.mirror.error is None and self.registered_keys() == set(before["gateway (Python)"]),
                      15, "mirrors and registrars to reconnect")
        self.wait_for(lambda: all(self.service_mirror(id)["error"] == "" for id in ("node-1", "go-1")), 15,
                      "the Node and Go mirrors to reconnect")
        time.sleep(TTL_S + 0.5)   # a lease lost in the outage would expire now
        keys = self.registered_keys()
        after = self.membership()
        state = self.gateway_state()
        say(f"    keys in etcd: {sorted(keys)}; gateway mirror at revision {state['revision']} (was {revision})")
        check(keys == set(before["gateway (Python)"]), "nothing lost: every instance is still registered in etcd")
        check(after == before, "every mirror equals what it had before the restart")
        check(state["revision"] >= revision, "the mirrors resumed from their revision")
        moved = self.membership_changes(t)
        check(not moved, "no mirror dropped, re-added or re-drained an instance across the outage"
              + (f" (saw {moved})" if moved else ""))
        check(state["revision"] == self.etcd_revision(), "the gateway's mirror is at etcd's revision")

    def membership_changes(self, after: int) -> list[str]:
        """Changes etcd decides (added, removed, drained) that any mirror applied after `after`."""
        assert self.observer is not None
        out = []
        for name, changes in [("gateway", self.gateway_state()["changes"]), ("observer", list(self.observer.changes)),
                              ("node-1", self.service_mirror("node-1")["changes"]),
                              ("go-1", self.service_mirror("go-1")["changes"])]:
            for c in changes:
                if c["t"] >= after and (c["from"] is None or c["to"] is None or "draining" in (c["from"], c["to"])):
                    out.append(f"{name}: {c['id']} {c['from']} → {c['to']}")
        return out

    def etcd_revision(self) -> int:
        request = urllib.request.Request(self.etcd + "/v3/kv/range", data=json.dumps(
            {"key": base64.b64encode(b"/").decode(), "count_only": True}).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=2) as reply:
            return int(json.loads(reply.read())["header"]["revision"])

    def registered_keys(self) -> set[str]:
        """The instance ids under the prefix, read from etcd itself."""
        prefix = b"/waypost/services/"
        body = {"key": base64.b64encode(prefix).decode(), "keys_only": True,
                "range_end": base64.b64encode(prefix[:-1] + bytes([prefix[-1] + 1])).decode()}
        request = urllib.request.Request(self.etcd + "/v3/kv/range", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=2) as reply:
            kvs = json.loads(reply.read()).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode().rsplit("/", 1)[-1] for kv in kvs}

    def story_return(self) -> None:
        say("⑥ py-2 comes back")
        t = ms()
        self.start_instance("py-2")
        seen = self.wait_all_mirrors("py-2", "healthy", t, 10)
        self.note("py-2 start → registered", t, seen)
        back = max(v for v in seen.values() if v is not None)
        a, b = self.phase(4)
        assert self.load is not None
        counts = Load.counts(self.load.since(back))
        total = counts["py-1"] + counts["py-2"]
        say(f"    after: py-1 {counts['py-1']}, py-2 {counts['py-2']}")
        check(total > 0 and counts["py-2"] / total >= 0.6, "traffic returned to py-2 by its weight")

    def summary(self) -> None:
        assert self.load is not None
        state = self.gateway_state()
        rows = self.load.results
        print()
        print("summary")
        print(f"  {'instance':<10} {'language':<8} {'served':>7} {'failed calls':>13}  health at the end")
        health = {i["id"]: i["health"] for i in state["instances"]}
        for id in ["py-1", "py-2", "node-1", "node-2", "go-1", "go-2"]:
            print(f"  {id:<10} {id.split('-')[0]:<8} {state['served'].get(id, 0):>7} "
                  f"{state['failed'].get(id, 0):>13}  {health.get(id, 'gone')}")
        print(f"  client requests: {len(rows)}, errors seen by clients: {Load.errors(rows)}")
        print(f"  {'change':<26} {'first mirror':>13} {'every mirror':>13}")
        for change, _, first, last in self.propagation:
            print(f"  {change:<26} {first:>10} ms {last:>10} ms")
        print(f"  (mirrors: the gateway's and an observer's in Python, node-1's in Node, go-1's in Go; "
              f"lease TTL {TTL_S} s)")
        if self.args.summary_json:
            Path(self.args.summary_json).write_text(json.dumps({
                "served": state["served"], "failed": state["failed"], "requests": len(rows),
                "client_errors": Load.errors(rows),
                "propagation": [{"change": c, "first_ms": f, "every_ms": l} for c, _, f, l in self.propagation]}))

    # --- the dashboard ---------------------------------------------------
    def start_dashboard(self) -> None:
        import http.server

        etcd, gateway = self.etcd, self.gateway_url

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: Any, **k: Any) -> None:
                super().__init__(*a, directory=str(ROOT), **k)

            def do_GET(self) -> None:
                if self.path == "/" or self.path.startswith("/?"):
                    self.send_response(302)
                    self.send_header("Location", "/examples/dashboard/index.html" + self.path[1:])
                    self.end_headers()
                elif self.path == "/config.json":
                    body = json.dumps({"etcd": [etcd], "gateway": gateway, "ttl_s": TTL_S}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    super().do_GET()

            def log_message(self, format: str, *a: object) -> None:
                pass

        Handler.extensions_map = {**Handler.extensions_map, ".mjs": "text/javascript", ".js": "text/javascript",
                                  ".wasm": "application/wasm"}
        self.dashboard = http.server.ThreadingHTTPServer(("127.0.0.1", self.ports["dashboard"]), Handler)
        threading.Thread(target=self.dashboard.serve_forever, daemon=True).start()
        say(f"dashboard: http://127.0.0.1:{self.ports['dashboard']}/  (etcd {self.etcd}, gateway {self.gateway_url})")

    def write_manifest(self) -> None:
        if self.args.manifest:
            Path(self.args.manifest).write_text(json.dumps({"pids": self.procs.all_pids,
                                                            "ports": sorted(self.ports.values())}))

    def serve(self) -> None:
        say(f"the fleet keeps running: dashboard http://127.0.0.1:{self.ports['dashboard']}/ — Ctrl-C stops it")
        if self.load is None or not self.load.running:
            self.load = Load(self.gateway_url, rate=10)
            self.load.start()
        self.serving = True
        if self.args.no_story:  # for tests that drive the running fleet: where everything is
            print("FLEET " + json.dumps({"dashboard": f"http://127.0.0.1:{self.ports['dashboard']}/", "etcd": self.etcd,
                                         "gateway": self.gateway_url, "ttl_s": TTL_S, "ports": self.ports,
                                         "pids": {n: c.pid for n, c in self.procs.children.items()}}), flush=True)
        while True:
            time.sleep(3600)

    def stop(self) -> None:
        if self.load:
            self.load.stop()
        self.observer_stop.set()
        if self.observer:
            self.observer.mirror.close()
        if self.dashboard:
            self.dashboard.shutdown()
            self.dashboard.server_close()
        self.procs.stop_all()
        self.write_manifest()
        if not self.args.keep_logs:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shorter phases (for tests)")
    p.add_argument("--serve", action="store_true", help="keep the fleet running after the story until Ctrl-C")
    p.add_argument("--no-story", action="store_true", help="start the fleet and keep it running, without the story")
    p.add_argument("--go-service", default=str(ROOT / "target/fleet/go-service"), help="the built Go service")
    p.add_argument("--manifest", help="write the PIDs and ports used here (JSON) on exit")
    p.add_argument("--summary-json", help="write the summary figures here (JSON)")
    p.add_argument("--keep-logs", action="store_true")
    args = p.parse_args()
    demo = Demo(args)
    # SIGTERM and SIGHUP end the demo the way Ctrl-C does: through the cleanup below.
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    code = 0
    try:
        if args.no_story:
            demo.start_fleet()
            demo.serve()
        demo.run()
        print("\nthe story ran as told: every check passed")
        if args.serve:
            demo.serve()
    except StoryFailed as e:
        say(f"✘ {e}")
        say(f"logs kept in {demo.tmp}")
        args.keep_logs = True
        code = 1
    except KeyboardInterrupt:
        say("stopping" if demo.serving else "interrupted")
        code = 0 if demo.serving else 130  # Ctrl-C is how a served fleet ends
    finally:
        demo.stop()
        say("every process the demo started is stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())

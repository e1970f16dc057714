"""The fleet demo runs its story start to finish and leaves nothing behind.

    target/py-venv/bin/python tests/fleet/demo_test.py

1. `demo.py --quick` under a time limit: exit 0, every step of the story
   narrated with its check passed; afterwards no process it started is
   alive and none of its ports is still listening.
2. Ctrl-C in the middle of the story: exit 130, the same cleanup.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples/fleet/demo.py"

STEPS = [
    "hello-python splits 1 : 3", "hello-node splits 1 : 3", "hello-go splits 1 : 3",
    "py-2 left every mirror within TTL + 1 s", "traffic moved to py-1",
    "no client request failed after the gateway saw the change",
    "the ejection lasted its base time, then probation", "clients saw no error",
    "no new traffic to go-2",
    "the fleet carried on while etcd was down", "every mirror kept all 5 instances and their etcd status",
    "nothing lost: every instance is still registered in etcd",
    "every mirror equals what it had before the restart", "the mirrors resumed from their revision",
    "no mirror dropped, re-added or re-drained an instance across the outage", "the gateway's mirror is at etcd's revision",
    "traffic returned to py-2 by its weight",
]


def listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def assert_nothing_left(manifest: Path) -> None:
    used = json.loads(manifest.read_text())
    assert len(used["pids"]) >= 8, used
    time.sleep(0.5)
    left = [pid for pid in used["pids"] if alive(pid)]
    assert not left, f"processes still alive: {left}"
    bound = set(used["ports"]) & listening_ports()
    assert not bound, f"ports still listening: {sorted(bound)}"


def test_story(tmp: Path) -> None:
    manifest, summary = tmp / "manifest.json", tmp / "summary.json"
    start = time.monotonic()
    run = subprocess.run([sys.executable, str(DEMO), "--quick", "--manifest", str(manifest),
                          "--summary-json", str(summary)], cwd=DEMO.parent, capture_output=True, text=True,
                         timeout=180)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    for step in STEPS:
        assert any("✔ " + step in line for line in run.stdout.splitlines()), f"no check: {step}"
    assert "✘" not in run.stdout
    figures = json.loads(summary.read_text())
    assert figures["client_errors"] == 0, figures
    kill = next(p for p in figures["propagation"] if p["change"].startswith("py-2 SIGKILL"))
    assert kill["every_ms"] <= 4_000, kill
    assert_nothing_left(manifest)
    print(f"demo-test: the story passed in {time.monotonic() - start:.0f} s; nothing left behind")


def test_interrupt(tmp: Path) -> None:
    manifest = tmp / "manifest-interrupt.json"
    child = subprocess.Popen([sys.executable, str(DEMO), "--quick", "--manifest", str(manifest)],
                             cwd=DEMO.parent, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line)
        if "py-2 is killed" in line:
            child.send_signal(signal.SIGINT)  # what Ctrl-C sends
            break
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest and "every process the demo started is stopped" in rest, rest
    assert_nothing_left(manifest)
    print("demo-test: Ctrl-C in the middle stops everything")


def test_ports_outside_the_ephemeral_range() -> None:
    """The demo's ports are chosen below the range the kernel hands out to
    outgoing connections, so none can be taken before its process binds it."""
    sys.path.insert(0, str(ROOT / "examples/fleet"))
    import fleet

    low = fleet.ephemeral_low()
    ports = [fleet.free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports), "a port given twice"
    if low > 12000:
        assert all(10000 <= p < low for p in ports), (low, ports)
    print(f"demo-test: ports below the ephemeral range ({min(ports)}..{max(ports)} < {low})")


if __name__ == "__main__":
    test_ports_outside_the_ephemeral_range()
    with tempfile.TemporaryDirectory() as tmp:
        test_story(Path(tmp))
        test_interrupt(Path(tmp))

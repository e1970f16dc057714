"""A loopback stand-in for Consul's HTTP API and the Kubernetes API server,
for the tests of the Consul and Kubernetes helpers (no Consul or cluster
can be installed here). It speaks the parts of each protocol the helpers
use, with the behaviour their documentation gives:

Consul (``api-docs/health.mdx``, ``api-docs/agent/service.mdx``,
``api-docs/agent/check.mdx``, ``api-docs/features/blocking.mdx``)
- ``GET /v1/health/service/<name>[?index=N&wait=D]``: the health entries
  of the service, ``X-Consul-Index`` on every answer. With ``index`` equal
  to the current index the answer is held until the index moves or
  ``wait`` (Go duration, capped at 10 m) runs out; any other ``index`` is
  answered at once (an index the client holds that is ahead of the server's
  is how an index going backwards shows).
- ``PUT /v1/agent/service/register`` (``ID``, ``Name``, ``Tags``,
  ``Address``, ``Port``, ``Meta``, ``Weights``, ``Check {TTL, Status,
  DeregisterCriticalServiceAfter}``), ``PUT /v1/agent/service/deregister/<id>``,
  ``PUT /v1/agent/check/{pass,warn,fail}/service:<id>``,
  ``PUT /v1/agent/service/maintenance/<id>?enable=&reason=``. A TTL check
  starts critical, turns critical when its TTL runs out without an update
  ("TTL expired"), and the service is deregistered once it has been
  critical for ``DeregisterCriticalServiceAfter`` (checked every 50 ms here,
  where Consul's reaper runs every 30 s). Node ``node-1`` at 127.0.0.1
  with a passing ``serfHealth``.

Kubernetes (``reference/using-api/api-concepts.md``)
- ``GET /apis/discovery.k8s.io/v1/namespaces/<ns>/endpointslices
  ?labelSelector=kubernetes.io/service-name%3D<svc>``: an
  ``EndpointSliceList`` with the current ``resourceVersion``.
- the same with ``watch=1&resourceVersion=RV[&allowWatchBookmarks=true]``:
  a chunked stream of JSON lines (``ADDED``/``MODIFIED``/``DELETED``, every
  event after RV first, then as they happen; ``BOOKMARK`` when asked). RV
  older than the retained history: HTTP 410 with a ``Status`` body.
- With a token, every API call needs ``Authorization: Bearer <token>``
  (401 otherwise).

Test controls (JSON bodies, ``POST /_test/...``) script what a real server
does on its own: ``consul/load {service, entries}`` (raw health entries, e.g.
a fixture), ``consul/index {index}`` (set the index, backwards too),
``consul/blocking {on}`` (answer every query at once: a misbehaving
server, to see that the client limits its rate), ``k8s/put {slice}``,
``k8s/delete {namespace, name}``, ``k8s/load {namespace, list}``,
``k8s/bookmark`` (unrelated changes elsewhere move the resource version;
every bookmarking watch is told), ``k8s/expire`` (every open watch gets the
in-stream ``ERROR`` 410 and ends), ``k8s/compact {bump?}`` (history dropped,
after ``bump`` changes elsewhere: a watch from before now gets HTTP 410), ``k8s/drop`` (open watches end, as when the
API server restarts). ``GET /_test/stats``: request counts by kind and the
number of other connections open; ``GET /_test/consul/agent``: every
``PUT /v1/agent/...`` call so far, in order, as ``{method, path (with its
query), body (JSON or null), raw (the body's text as sent)}``.

Run ``python3 store_server.py``: binds 127.0.0.1 on a free port, prints
``{"port": N}`` on a line, and stops when its stdin closes (so a test that
dies takes it along) or after ``--max-seconds`` (default 300). In Python,
``with StoreServer() as s: s.url``.
"""
from __future__ import annotations

import argparse
import json
import re
import select
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

Json = Any

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_WAIT_S = 600.0


def duration(text: str) -> float:
    """A Go duration (``5m``, ``1m30s``, ``250ms``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"bad duration {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


class _Service:
    """One service registered through the agent, with its TTL check."""

    def __init__(self, body: dict[str, Any], now: float) -> None:
        self.id = str(body.get("ID") or body["Name"])
        self.name = str(body["Name"])
        self.body = body
        check = body.get("Check") or {}
        self.ttl = duration(check["TTL"]) if check.get("TTL") else None
        dereg = check.get("DeregisterCriticalServiceAfter")
        self.deregister_after = duration(dereg) if dereg else None
        self.status = str(check.get("Status") or "critical") if self.ttl is not None else None
        self.output = ""
        self.updated = now
        self.critical_since: Optional[float] = now if self.status == "critical" else None
        self.maintenance: Optional[str] = None

    def set(self, status: str, note: str, now: float) -> None:
        if status == "critical" and self.status != "critical":
            self.critical_since = now
        elif status != "critical":
            self.critical_since = None
        self.status, self.output, self.updated = status, note, now

    def entry(self) -> dict[str, Any]:
        b = self.body
        checks: list[dict[str, Any]] = [_check("serfHealth", "Serf Health Status", "passing", "", "Agent alive and reachable")]
        if self.status is not None:
            checks.append(_check(f"service:{self.id}", f"Service '{self.name}' check", self.status, self.id, self.output))
        if self.maintenance is not None:
            checks.append(_check(f"_service_maintenance:{self.id}", "Service Maintenance Mode", "critical", self.id, "",
                                 notes=self.maintenance))
        return {
            "Node": {"ID": "0b3a6c7e-0000-4000-8000-000000000001", "Node": "node-1", "Address": "127.0.0.1",
                     "Datacenter": "dc1", "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"}, "Meta": {}},
            "Service": {"ID": self.id, "Service": self.name, "Tags": b.get("Tags") or [], "Address": b.get("Address") or "",
                        "Meta": b.get("Meta") or {}, "Port": int(b.get("Port") or 0),
                        "Weights": b.get("Weights") or {"Passing": 1, "Warning": 1},
                        **({"Locality": b["Locality"]} if b.get("Locality") else {})},
            "Checks": checks,
        }


def _check(check_id: str, name: str, status: str, service_id: str, output: str, notes: str = "") -> dict[str, Any]:
    return {"Node": "node-1", "CheckID": check_id, "Name": name, "Status": status, "Notes": notes,
            "Output": output, "ServiceID": service_id, "ServiceName": "", "ServiceTags": []}


class _Watch:
    """One open Kubernetes watch: the events waiting to be written."""

    def __init__(self, namespace: str, service: str, bookmarks: bool) -> None:
        self.namespace, self.service, self.bookmarks = namespace, service, bookmarks
        self.queue: list[dict[str, Any]] = []
        self.end = False


class State:
    """Everything both fake servers hold, under one condition variable."""

    def __init__(self, token: Optional[str] = None) -> None:
        self.cond = threading.Condition()
        self.closing = False
        self.token = token
        # Consul
        self.index = 1
        self.blocking = True
        self.static: dict[str, list[Json]] = {}
        self.services: dict[str, _Service] = {}
        self.agent_calls: list[dict[str, Any]] = []
        # Kubernetes
        self.rv = 1000
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.oldest = 1000  # a watch from an older resource version is 410
        self.watches: list[_Watch] = []
        # Stats
        self.counts: dict[str, int] = {}
        self.open = 0

    def count(self, kind: str) -> None:
        with self.cond:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    # --- Consul ---------------------------------------------------------
    def consul_changed(self) -> None:
        self.index += 1
        self.cond.notify_all()

    def health(self, service: str) -> list[Json]:
        entries = list(self.static.get(service, []))
        entries += [s.entry() for s in sorted(self.services.values(), key=lambda s: s.id) if s.name == service]
        return entries

    def reap(self, now: float) -> None:
        """TTL checks running out, and critical services deregistered."""
        with self.cond:
            changed = False
            for sid, s in list(self.services.items()):
                if s.ttl is not None and s.status != "critical" and now - s.updated > s.ttl:
                    s.set("critical", "TTL expired", now)
                    changed = True
                if s.deregister_after is not None and s.critical_since is not None and now - s.critical_since > s.deregister_after:
                    del self.services[sid]
                    changed = True
            if changed:
                self.consul_changed()

    # --- Kubernetes -----------------------------------------------------
    def k8s_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        ns = obj["metadata"].get("namespace", "default")
        key = (ns, obj["metadata"]["name"])
        if kind == "DELETED":
            gone = self.slices.pop(key, None)
            if gone is None:
                return
            obj = dict(gone, metadata=dict(gone["metadata"], resourceVersion=str(self.rv)))
        else:
            kind = "MODIFIED" if key in self.slices else "ADDED"
            self.slices[key] = obj
        self.history.append((self.rv, kind, obj))
        for w in self.watches:
            if w.namespace == ns and _label(obj) == w.service:
                w.queue.append({"type": kind, "object": obj})
        self.cond.notify_all()

    def k8s_list(self, namespace: str, service: str) -> dict[str, Any]:
        items = [o for (ns, _), o in sorted(self.slices.items()) if ns == namespace and _label(o) == service]
        return {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"resourceVersion": str(self.rv)}, "items": items}


def _label(obj: dict[str, Any]) -> Optional[str]:
    labels = obj.get("metadata", {}).get("labels") or {}
    value = labels.get("kubernetes.io/service-name")
    return value if isinstance(value, str) else None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


_SLICES = re.compile(r"^/apis/discovery\.k8s\.io/v1/namespaces/([^/]+)/endpointslices$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.state.cond:
            self.server.state.open += 1

    def finish(self) -> None:
        with self.server.state.cond:
            self.server.state.open -= 1
        try:
            super().finish()
        except OSError:
            pass

    # --- plumbing -------------------------------------------------------
    def _gone(self) -> bool:
        """Whether the client closed its end (a held answer then stops)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _body(self) -> Json:
        return self._raw_body()[1]

    def _raw_body(self) -> tuple[str, Json]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return raw.decode(errors="replace"), json.loads(raw) if raw.strip() else None

    def _send(self, code: int, body: Json = None, headers: Optional[dict[str, str]] = None, text: Optional[str] = None) -> None:
        data = (text if text is not None else json.dumps(body)).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json" if text is None else "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client went away (a helper closing): nothing to answer
            self.close_connection = True

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        path = urllib.parse.unquote(url.path)
        state = self.server.state
        try:
            if path.startswith("/_test/"):
                self._control(method, path[len("/_test/"):], state)
            elif path.startswith("/v1/"):
                self._consul(method, path, query, state)
            elif path.startswith("/apis/"):
                self._k8s(method, url.path, query, state)
            else:
                self._send(404, text="no such endpoint\n")
        except (KeyError, ValueError, TypeError) as e:
            self._send(400, text=f"bad request: {e}\n")

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        self._route("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._route("PUT")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    # --- Consul ---------------------------------------------------------
    def _consul(self, method: str, path: str, query: dict[str, str], state: State) -> None:
        m = re.match(r"^/v1/health/service/([^/]+)$", path)
        if m and method == "GET":
            state.count("consul_health")
            index = int(query["index"]) if query.get("index") else 0
            wait = min(duration(query["wait"]), MAX_WAIT_S) if query.get("wait") else 300.0
            deadline = time.monotonic() + wait
            with state.cond:
                while (state.blocking and index and index == state.index and not state.closing
                       and time.monotonic() < deadline and not self._gone()):
                    state.cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                body, now_index = state.health(m.group(1)), state.index
            self._send(200, body, {"X-Consul-Index": str(now_index), "X-Consul-KnownLeader": "true",
                                   "X-Consul-LastContact": "0"})
            return
        if method != "PUT":
            self._send(405, text="method not allowed\n")
            return
        now = time.monotonic()
        raw, body = self._raw_body()
        with state.cond:
            state.agent_calls.append({"method": method, "path": self.path, "body": body, "raw": raw})
        if path == "/v1/agent/service/register":
            state.count("consul_register")
            if not isinstance(body, dict) or not body.get("Name"):
                self._send(400, text="Missing service name\n")
                return
            service = _Service(body, now)
            with state.cond:
                old = state.services.get(service.id)
                if old is not None and service.status is not None and old.status is not None:
                    service.status, service.output, service.updated = old.status, old.output, old.updated
                    service.critical_since = old.critical_since
                state.services[service.id] = service
                state.consul_changed()
            self._send(200, text="")
            return
        m = re.match(r"^/v1/agent/service/deregister/(.+)$", path)
        if m:
            state.count("consul_deregister")
            with state.cond:
                found = state.services.pop(m.group(1), None)
                if found is not None:
                    state.consul_changed()
            if found is None:
                self._send(404, text=f'Unknown service ID "{m.group(1)}". Ensure that the service ID is passed, not the service name.\n')
            else:
                self._send(200, text="")
            return
        m = re.match(r"^/v1/agent/check/(pass|warn|fail)/service:(.+)$", path)
        if m:
            state.count(f"consul_check_{m.group(1)}")
            status = {"pass": "passing", "warn": "warning", "fail": "critical"}[m.group(1)]
            with state.cond:
                s = state.services.get(m.group(2))
                if s is not None and s.status is not None:
                    if s.status != status:
                        state.consul_changed()
                    s.set(status, query.get("note", ""), now)
                else:
                    s = None
            if s is None:
                self._send(404, text=f'Unknown check ID "service:{m.group(2)}".\n')
            else:
                self._send(200, text="")
            return
        m = re.match(r"^/v1/agent/service/maintenance/(.+)$", path)
        if m:
            state.count("consul_maintenance")
            with state.cond:
                s = state.services.get(m.group(1))
                if s is not None:
                    s.maintenance = (query.get("reason") or "Maintenance mode is enabled") if query.get("enable") == "true" else None
                    state.consul_changed()
            self._send(200 if s is not None else 404, text="")
            return
        self._send(404, text="no such endpoint\n")

    # --- Kubernetes -----------------------------------------------------
    def _k8s(self, method: str, raw_path: str, query: dict[str, str], state: State) -> None:
        if state.token is not None and self.headers.get("Authorization") != f"Bearer {state.token}":
            state.count("k8s_unauthorized")
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        m = _SLICES.match(raw_path)
        selector = query.get("labelSelector", "")
        if not m or method != "GET" or not selector.startswith("kubernetes.io/service-name="):
            self._send(404, _status(404, "NotFound", f"the server could not find the requested resource ({raw_path})"))
            return
        namespace = urllib.parse.unquote(m.group(1))
        service = selector[len("kubernetes.io/service-name="):]
        if query.get("watch") not in ("1", "true"):
            state.count("k8s_list")
            with state.cond:
                body = state.k8s_list(namespace, service)
            self._send(200, body)
            return
        state.count("k8s_watch")
        since = int(query.get("resourceVersion") or 0)
        watch = _Watch(namespace, service, query.get("allowWatchBookmarks") == "true")
        with state.cond:
            if since < state.oldest:
                too_old = True
            else:
                too_old = False
                watch.queue = [{"type": kind, "object": obj} for rv, kind, obj in state.history
                               if rv > since and obj["metadata"].get("namespace", "default") == namespace
                               and _label(obj) == service]
                state.watches.append(watch)
        if too_old:
            state.count("k8s_watch_410")
            self._send(410, _status(410, "Expired", f"too old resource version: {since} ({state.oldest})"))
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while True:
                with state.cond:
                    while not watch.queue and not watch.end and not state.closing:
                        if self._gone():
                            return
                        state.cond.wait(0.2)
                    events, watch.queue = watch.queue, []
                    end = watch.end or state.closing
                for event in events:
                    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                if end:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
        except OSError:
            self.close_connection = True
        finally:
            with state.cond:
                if watch in state.watches:
                    state.watches.remove(watch)

    # --- controls -------------------------------------------------------
    def _control(self, method: str, what: str, state: State) -> None:
        if what == "stats" and method == "GET":
            with state.cond:
                counts = {"requests": dict(state.counts), "open": state.open - 1, "watches": len(state.watches),
                          "consul_index": state.index, "k8s_resource_version": state.rv,
                          "consul_services": sorted(state.services)}
            self._send(200, counts)
            return
        if what == "consul/agent" and method == "GET":
            with state.cond:
                calls = list(state.agent_calls)
            self._send(200, calls)
            return
        body: Any = self._body() or {}
        with state.cond:
            if what == "consul/load":
                state.static[body["service"]] = list(body["entries"])
                state.consul_changed()
            elif what == "consul/index":
                state.index = int(body["index"])
                state.cond.notify_all()
            elif what == "consul/blocking":
                state.blocking = bool(body["on"])
                state.cond.notify_all()
            elif what == "k8s/put":
                state.k8s_event("MODIFIED", body["slice"])
            elif what == "k8s/delete":
                state.k8s_event("DELETED", {"metadata": {"namespace": body["namespace"], "name": body["name"]}})
            elif what == "k8s/load":
                for item in body["list"].get("items") or []:
                    item = json.loads(json.dumps(item))
                    item.setdefault("metadata", {})["namespace"] = body["namespace"]
                    state.k8s_event("ADDED", item)
            elif what == "k8s/bookmark":
                state.rv += 5
                for w in state.watches:
                    if w.bookmarks:
                        w.queue.append({"type": "BOOKMARK", "object": {
                            "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                            "metadata": {"resourceVersion": str(state.rv)}}})
                state.cond.notify_all()
            elif what == "k8s/expire":
                for w in state.watches:
                    w.queue.append({"type": "ERROR", "object": _status(410, "Expired", "too old resource version")})
                    w.end = True
                state.cond.notify_all()
            elif what == "k8s/compact":
                state.rv += int(body.get("bump", 0))  # changes elsewhere, compacted with the rest
                state.history.clear()
                state.oldest = state.rv
            elif what == "k8s/drop":
                for w in state.watches:
                    w.end = True
                state.cond.notify_all()
            else:
                self._send(404, text=f"no control {what}\n")
                return
            answer = {"consul_index": state.index, "k8s_resource_version": state.rv}
        self._send(200, answer)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: State


class StoreServer:
    """The fake servers on 127.0.0.1, a free port, in background threads."""

    def __init__(self, token: Optional[str] = None) -> None:
        self.state = State(token)
        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.state = self.state
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []

    def _reaper(self) -> None:
        while True:
            with self.state.cond:
                if self.state.closing:
                    return
            self.state.reap(time.monotonic())
            time.sleep(0.05)

    def start(self) -> "StoreServer":
        for target in (self.httpd.serve_forever, self._reaper):
            t = threading.Thread(target=target, name="waypost-store-server", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        with self.state.cond:
            self.state.closing = True
            self.state.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join()

    def __enter__(self) -> "StoreServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    server = StoreServer(args.token).start()
    print(json.dumps({"port": server.port}), flush=True)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the parent closes it or dies
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait(args.max_seconds)
    server.close()


if __name__ == "__main__":
    main()

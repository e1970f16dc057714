"""A Python HTTP service that registers itself in etcd.

    python examples/fleet/service.py --id py-1 --port 8001 --etcd http://127.0.0.1:2379

Answers /hello (with its id) and /health; /admin/fail?rate=0.5 makes it fail
that share of /hello calls, /admin/drain?on=1 marks it `maintenance` in etcd
(mirrors stop sending it new traffic), /admin/status?status=critical writes
any source status. Registration: waypost.etcd.Registrar, the instance's wire
form under /waypost/services/<service>/<id> with a lease; a status change is
Registrar.update, so a registration after a lost lease keeps it.
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import signal
import threading
import urllib.parse
from typing import Any

from waypost.etcd import EtcdError, Registrar

STATUSES = ("passing", "warning", "critical", "maintenance")


def main() -> None:
    env = os.environ.get
    p = argparse.ArgumentParser()
    p.add_argument("--id", default=env("ID", "py-1"))
    p.add_argument("--service", default=env("SERVICE", "hello-python"))
    p.add_argument("--port", type=int, default=int(env("PORT", "8001")))
    p.add_argument("--etcd", default=env("ETCD", "http://127.0.0.1:2379"), help="comma-separated endpoints")
    p.add_argument("--weight", type=int, default=int(env("WEIGHT", "1")))
    p.add_argument("--zone", default=env("ZONE", "zone-a"))
    p.add_argument("--ttl", type=int, default=int(env("TTL", "3")))
    p.add_argument("--fail-rate", type=float, default=float(env("FAIL_RATE", "0")))
    args = p.parse_args()

    state: dict[str, Any] = {"fail_rate": args.fail_rate, "draining": False}
    instance = {"id": args.id, "service": args.service, "address": "127.0.0.1", "port": args.port,
                "weight": args.weight, "zone": args.zone, "meta": {"lang": "python"}}
    endpoints = args.etcd.split(",")
    registrar = Registrar(endpoints, instance, ttl_s=args.ttl)

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/hello":
                if random.random() < state["fail_rate"]:
                    self.reply(503, {"id": args.id, "error": "injected failure"})
                else:
                    self.reply(200, {"id": args.id, "lang": "python", "hello": query.get("name", "world")})
            elif url.path == "/health":
                self.reply(503 if state["draining"] else 200, {"id": args.id, "draining": state["draining"]})
            elif url.path == "/admin/fail":
                state["fail_rate"] = float(query.get("rate", "0.5"))
                self.reply(200, {"id": args.id, "fail_rate": state["fail_rate"]})
            elif url.path == "/admin/drain":
                state["draining"] = query.get("on", "1") == "1"
                self.set_status("maintenance" if state["draining"] else "passing")
            elif url.path == "/admin/status":
                if query.get("status") not in STATUSES:
                    self.reply(400, {"error": f"status: one of {', '.join(STATUSES)}"})
                else:
                    self.set_status(query["status"])
            else:
                self.reply(404, {"error": "not found"})

        def set_status(self, status: str) -> None:
            # Under the registrar's lease, and kept for any later registration.
            try:
                registrar.update({**instance, "status": status})
            except EtcdError as e:
                self.reply(502, {"id": args.id, "error": str(e)})
            else:
                self.reply(200, {"id": args.id, "status": status, "draining": state["draining"]})

        def log_message(self, format: str, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with registrar:
        print(f"{args.id}: {args.service} on 127.0.0.1:{args.port}, waypost.etcd.Registrar, lease TTL {registrar.granted_ttl} s",
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    server.server_close()


if __name__ == "__main__":
    main()

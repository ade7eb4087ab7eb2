#!/usr/bin/env python3
"""A stand-in upstream for the Envoy example: answers every request with what it saw,
so the headers the gateway added (x-authz-subject, x-authz-decision-id) are visible.

    .venv/bin/python examples/envoy/upstream.py          # listens on 127.0.0.1:8080
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def _echo(self) -> None:
        body = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers.items())},
            indent=2,
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = _echo


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    print(f"upstream: listening on 127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()

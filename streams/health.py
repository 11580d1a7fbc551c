"""Liveness and readiness of a worker over HTTP, for Docker and Kubernetes healthchecks.

`GET /healthz` is 200 while the worker's event loop keeps running its broker checks (else 503: restart it);
`GET /readyz` is 200 once the worker holds a consumer-group assignment and the last broker check succeeded (else
503 with the reason). Served from a daemon thread on DISTILLERY_METRICS_HOST:DISTILLERY_HEALTH_PORT.
"""

from __future__ import annotations

import sys
import threading
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from streams.settings import Settings

Probe = Callable[[], tuple[bool, str]]  # -> (ok, reason)


def _handler(probes: dict[str, Probe]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            probe = probes.get(self.path.split("?", 1)[0])
            if probe is None:
                ok, reason, code = False, f"unknown path {self.path}: use {', '.join(sorted(probes))}", 404
            else:
                ok, reason = probe()
                code = 200 if ok else 503
            body = orjson.dumps({"ok": ok, "reason": reason})
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - healthchecks poll often: no log
            return

    return Handler


def serve_health(host: str, port: int, live: Probe, ready: Probe) -> ThreadingHTTPServer:
    """Serve /healthz (`live`) and /readyz (`ready`) on host:port from a daemon thread; returns the server
    (its `server_address` holds the bound port when `port` is 0)."""
    try:
        server = ThreadingHTTPServer((host, port), _handler({"/healthz": live, "/readyz": ready}))
    except OSError as err:
        raise OSError(f"cannot serve /healthz on {host}:{port}: {err}; pick a free DISTILLERY_HEALTH_PORT "
                      "(0 = off)") from err
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    """`python -m streams.health [healthz|readyz]`: exit 0 when the worker's endpoint answers 200, else 1 (for
    Docker HEALTHCHECK; the port is DISTILLERY_HEALTH_PORT, the host 127.0.0.1)."""
    path = (argv if argv is not None else sys.argv[1:] or ["healthz"])[0]
    port = Settings.from_env().health_port
    if not port:
        print("DISTILLERY_HEALTH_PORT is not set: the worker serves no health endpoint", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=3) as response:
            print(response.read().decode())
            return 0 if response.status == 200 else 1
    except Exception as err:  # refused, timed out or a 503 (HTTPError)
        print(f"{path} on port {port}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

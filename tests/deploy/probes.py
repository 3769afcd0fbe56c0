"""Run a container's health-check command for real, against a local ``/health``.

The image's HEALTHCHECK, the compose service's healthcheck and the Kubernetes
liveness probe are ``python -c CODE`` commands aimed at the gateway's port.
:func:`run_probe` runs one with its URL pointed at :func:`health_server`, an
HTTP server whose ``/health`` answers the status a test sets.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from typing import Any, Iterator

import pytest


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = b'{"status": "x"}'
        self.send_response(self.status if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[type[_Health], str]]:
    """A local /health that answers with ``handler.status``; yields (handler, base URL)."""
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_probe(argv: list[str], url_from: str, url_to: str) -> int:
    """Run a probe's command (python -c ...) with its URL pointed at the test server; its exit code."""
    assert argv[0] == "python" and argv[1] == "-c", argv
    code = argv[2]
    assert url_from in code, code
    code = code.replace(url_from, url_to)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    return done.returncode

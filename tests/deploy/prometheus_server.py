"""A real Prometheus server for tests: its own port and storage, queried through its HTTP API.

:func:`tool` finds ``prometheus`` or ``promtool`` on PATH (Debian's
``prometheus`` package, which ``.ci/run`` installs) and fails the test with
what to install when it is missing. :class:`PrometheusServer` runs the server
as a child process on a config the test wrote; every wait it offers is bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

from tests.process import free_port

T = TypeVar("T")
START_TIMEOUT = 20.0
POLL = 0.2


def tool(name: str) -> str:
    """The path of ``name`` (``prometheus`` or ``promtool``); fails the test if it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install prometheus (.ci/run does it)", pytrace=False)
    return path


class PrometheusServer:
    """One ``prometheus`` process on 127.0.0.1 with its storage in ``workdir``."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the server printed so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until ``/-/ready`` answers 200."""
        self.wait_until(lambda: self._ready() or None, timeout, "readiness")

    def wait_until(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        """Call ``probe`` until it returns something other than ``None`` (or fail after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}\n{self.log()}")
            result = probe()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} from prometheus within {timeout}s\n{self.log()}")
            time.sleep(POLL)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/-/ready", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def _get(self, path: str, params: dict[str, str] | list[tuple[str, str]] | None = None) -> Any:
        """The ``data`` of a successful API answer; an error answer fails the test."""
        url = self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"GET {path} {params}: {exc.code} {exc.read()[:500]!r}") from None
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (a list of ``{"metric", "value"}``)."""
        data = self._get("/api/v1/query", {"query": expr})
        assert data["resultType"] == "vector", data
        return data["result"]

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        """The values ``label`` takes (among the series ``match`` selects)."""
        params = [("match[]", match)] if match else None
        return self._get(f"/api/v1/label/{label}/values", params)

    def rules(self) -> list[dict[str, Any]]:
        """Every rule the server loaded, with its health and last error."""
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now, with their labels."""
        return self._get("/api/v1/alerts")["alerts"]

    def stop(self) -> None:
        """End the server and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

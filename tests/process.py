"""Run the real gateway (``python -m proxy``) as a child process for tests.

:class:`GatewayProcess` starts the process with its stdout and stderr piped,
reads both on background threads, parses each stdout line as JSON, and lets a
test wait (with a bound, always) for a log line, for the ``gateway_started``
port, or for the exit. :meth:`GatewayProcess.kill` ends the process and
everything it spawned; the ``gateway_process`` fixture calls it in teardown.

Every wait has a sync form for plain tests and an ``a``-prefixed async form
for tests whose event loop also runs a fake upstream: the async forms poll
without blocking the loop, so the gateway can reach the fake meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

START_TIMEOUT = 15.0
POLL = 0.02

LogLine = dict[str, Any]
Match = Callable[[LogLine], bool]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as JSON to ``path`` (in place if it exists) and return the path."""
    path.write_text(json.dumps(config, indent=2))
    return path


def console_script(name: str = "llm-gateway") -> str:
    """The installed console script next to this interpreter (``.venv/bin/llm-gateway``)."""
    return os.path.join(os.path.dirname(sys.executable), name)


def child_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment without ``LLM_GATEWAY_CONFIG``, plus ``overrides`` (None deletes)."""
    env = dict(os.environ)
    env.pop("LLM_GATEWAY_CONFIG", None)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def event_is(event: str, **fields: Any) -> Match:
    """A matcher for log lines of ``event`` whose ``fields`` have these values."""

    def match(line: LogLine) -> bool:
        return line.get("event") == event and all(line.get(k) == v for k, v in fields.items())

    return match


class GatewayProcess:
    """One gateway child process and everything it printed."""

    config_path: Path | None = None

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, command: Sequence[str] | None = None) -> None:
        self.argv = [*(command or (sys.executable, "-m", "proxy")), *args]
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env if env is not None else child_env(),
            cwd=cwd,
            start_new_session=True,  # its own process group, so teardown can end workers too
        )
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.events: list[LogLine] = []
        self.bad_lines: list[str] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.port: int | None = None

    # ------------------------------------------------------------------ output

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                if not is_stdout:
                    self.stderr_lines.append(text)
                    continue
                self.stdout_lines.append(text)
                try:
                    doc = json.loads(text)
                except ValueError:
                    self.bad_lines.append(text)
                    continue
                if isinstance(doc, dict):
                    self.events.append(doc)
                else:
                    self.bad_lines.append(text)
        stream.close()

    @property
    def stdout(self) -> str:
        with self._lock:
            return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        with self._lock:
            return "\n".join(self.stderr_lines)

    def output(self) -> str:
        """Everything printed so far, for assertion messages."""
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    def lines(self, match: Match | str | None = None) -> list[LogLine]:
        """The parsed stdout lines so far that ``match`` (a predicate or an event name)."""
        if isinstance(match, str):
            match = event_is(match)
        with self._lock:
            return [line for line in self.events if match is None or match(line)]

    def requests(self, **fields: Any) -> list[LogLine]:
        """The ``request`` log lines so far with these field values."""
        return self.lines(event_is("request", **fields))

    # ------------------------------------------------------------------ waiting

    def _found(self, match: Match, count: int) -> list[LogLine] | None:
        found = self.lines(match)
        return found if len(found) >= count else None

    def _timeout(self, what: str, timeout: float) -> AssertionError:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return AssertionError(f"no {what} within {timeout}s (process {state})\n{self.output()}")

    def _line_or_none(self, match: Match, count: int, deadline: float, timeout: float) -> LogLine | None:
        """The ``count``-th matching line if there is one yet; raise if it can no longer come."""
        found = self._found(match, count)
        if found:
            return found[count - 1]
        if time.monotonic() > deadline:
            raise self._timeout("matching log line", timeout)
        if self.proc.poll() is not None and all(not r.is_alive() for r in self._readers):
            raise AssertionError(f"process exited {self.proc.returncode} before the log line\n"
                                 f"{self.output()}")
        return None

    def wait_for(self, match: Match | str, timeout: float = 5.0, count: int = 1) -> LogLine:
        """Block until ``count`` lines match; return the last of them."""
        match = event_is(match) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        while (line := self._line_or_none(match, count, deadline, timeout)) is None:
            time.sleep(POLL)
        return line

    async def await_for(self, match: Match | str, timeout: float = 5.0, count: int = 1) -> LogLine:
        """Like :meth:`wait_for` without blocking the event loop."""
        match = event_is(match) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        while (line := self._line_or_none(match, count, deadline, timeout)) is None:
            await asyncio.sleep(POLL)
        return line

    def wait_started(self, timeout: float = START_TIMEOUT) -> int:
        """Block until ``gateway_started``; return (and remember) its port."""
        self.port = int(self.wait_for("gateway_started", timeout)["port"])
        return self.port

    async def await_started(self, timeout: float = START_TIMEOUT) -> int:
        """Like :meth:`wait_started` without blocking the event loop."""
        self.port = int((await self.await_for("gateway_started", timeout))["port"])
        return self.port

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Block until the process exits; return its exit code; fail after ``timeout``."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._timeout("exit", timeout) from None
        self._join_readers()
        return code

    async def await_exit(self, timeout: float = 10.0) -> int:
        """Like :meth:`wait_exit` without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise self._timeout("exit", timeout)
            await asyncio.sleep(POLL)
        self._join_readers()
        return self.proc.returncode

    def _join_readers(self) -> None:
        for reader in self._readers:
            reader.join(2.0)

    # ------------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        assert self.port is not None, "the gateway has not reported its port yet"
        return f"http://127.0.0.1:{self.port}"

    def send(self, signum: int) -> None:
        """Send ``signum`` to the gateway process itself (not its group)."""
        self.proc.send_signal(signum)

    def kill(self) -> None:
        """End the process and anything it spawned (its own process group), then reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        else:
            # The leader is gone; end any worker it left behind in its group.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        self._join_readers()


def run_cli(args: Sequence[str], *, env: dict[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m proxy args`` to completion (``--check``, or a start that must fail)."""
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env if env is not None else child_env(),
        cwd=cwd,
        timeout=timeout,
    )

"""Child processes of the benchmark: start, wait for readiness, measure memory, kill.

Every child runs in its own session (its own process group), with stdout and
stderr going to files in the run's temp directory, never to a pipe nobody
reads. :class:`Procs` remembers every child and :meth:`Procs.close` ends each
group (SIGTERM, then SIGKILL) — the driver calls it in ``finally``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

POLL = 0.02
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the driver dies (Linux ``PR_SET_PDEATHSIG``).

    A backstop for a driver killed with SIGKILL, which runs no ``finally``;
    a gateway supervisor passes the SIGTERM on to its workers.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def raise_nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int | None:
    """VmRSS of ``pid`` in kB (from /proc/PID/status), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def group_pids(pgid: int) -> list[int]:
    """Every live process whose process group is ``pgid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(fields[2]) == pgid:  # fields after ")": state ppid pgrp ...
            pids.append(int(entry))
    return pids


@dataclass
class Child:
    """One started child: its Popen, name and log files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def lines(self) -> list[dict[str, Any]]:
        """The JSON lines the child printed so far (other lines skipped)."""
        found = []
        try:
            text = self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return found
        for line in text.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                found.append(doc)
        return found

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float,
                 count: int = 1) -> list[dict[str, Any]]:
        """Block until ``count`` printed lines match; fail after ``timeout`` or if the child exits."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines() if match(line)]
            if len(found) >= count:
                return found
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.popen.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.tail()}")
            time.sleep(POLL)

    def tail(self, chars: int = 2000) -> str:
        """The end of its stdout and stderr, for error messages."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            try:
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
            except FileNotFoundError:
                pass
        return "\n".join(parts)

    def rss_kb(self) -> int | None:
        """RSS of the child alone."""
        return rss_kb(self.pid)

    def group_rss_kb(self) -> int:
        """RSS summed over the child's whole process group (a supervisor and its workers)."""
        return sum(rss_kb(pid) or 0 for pid in group_pids(self.pid))


class Procs:
    """The registry of children; :meth:`close` ends them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
              cwd: str | None = None) -> Child:
        """Start ``argv`` in a new session with its output in ``<workdir>/<name>.out|.err``."""
        out, err = self.workdir / f"{name}.out", self.workdir / f"{name}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                     env=env, cwd=cwd, start_new_session=True, preexec_fn=die_with_parent)
        child = Child(name, popen, out, err)
        self.children.append(child)
        return child

    def stop(self, child: Child, grace: float = 5.0) -> None:
        """SIGTERM the child's group, SIGKILL it after ``grace`` seconds, reap the child."""
        if child.popen.poll() is None:
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(child.pid, signal.SIGKILL)  # anything left in the group (workers)
        try:
            child.popen.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        if child in self.children:
            self.children.remove(child)

    def close(self) -> None:
        """Stop every child still registered, newest first."""
        for child in reversed(list(self.children)):
            try:
                self.stop(child, grace=3.0)
            except Exception:  # keep going: every group must be ended
                _signal_group(child.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass

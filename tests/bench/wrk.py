"""Drive a server with wrk and parse its ``--latency`` report.

The Lua script POSTs a JSON chat body with the caller's ``Authorization``.
For the cache-miss path every request carries a unique message (a run nonce,
the wrk thread's id and a per-thread counter built in ``request()``); for the
hit path every request is the same.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.bench.procs import die_with_parent
from tests.bench.stats import LoadResult

LUA = r"""
local nonce = "%(nonce)s"
local unique = %(unique)s
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(key)s"%(extra)s}
local head = '{%(model_field)s"max_tokens":64,"messages":[{"role":"user","content":"bench '
local tail = '"}]}'
local counter = 0
local fixed = nil
local made = 0

function setup(thread)
  made = made + 1
  thread:set("tid", made)
end

function request()
  if not unique then
    if fixed == nil then
      fixed = wrk.format("POST", "%(path)s", headers, head .. "hit" .. tail)
    end
    return fixed
  end
  counter = counter + 1
  return wrk.format("POST", "%(path)s", headers, head .. nonce .. "-" .. tid .. "-" .. counter .. tail)
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
_PCT = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_REQS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def available() -> bool:
    """Whether a ``wrk`` binary is on PATH."""
    return shutil.which("wrk") is not None


def write_script(directory: Path, key: str, model: str, unique: bool,
                 path: str = "/v1/chat/completions", headers: dict[str, str] | None = None) -> Path:
    """A Lua script for one run (a fresh nonce, so no run can hit another's cache entries)."""
    text = LUA % {"nonce": uuid.uuid4().hex[:12], "unique": "true" if unique else "false",
                  "key": key, "model_field": f'"model":"{model}",' if model else "", "path": path,
                  "extra": "".join(f', ["{name}"] = "{value}"' for name, value in (headers or {}).items())}
    script = directory / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(text)
    return script


def parse(output: str, concurrency: int) -> LoadResult:
    """The figures of a ``wrk --latency`` report."""
    pcts = {int(p): float(v) * _UNITS_MS[u] for p, v, u in _PCT.findall(output)}
    reqs = _REQS.search(output)
    rps = _RPS.search(output)
    if not reqs or not rps:
        raise ValueError(f"cannot parse wrk output:\n{output}")
    non2xx = _NON2XX.search(output)
    socket = _SOCKET.search(output)
    return LoadResult(
        tool="wrk", concurrency=concurrency, requests=int(reqs.group(1)),
        seconds=float(reqs.group(2)) * _UNITS_MS[reqs.group(3)] / 1000, rps=float(rps.group(1)),
        p50_ms=pcts.get(50), p99_ms=pcts.get(99),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
    )


def run(url: str, script: Path, concurrency: int, seconds: float, threads: int = 1,
        timeout_s: float = 10.0) -> LoadResult:
    """``wrk --latency`` against ``url`` for ``seconds``; killed if it overruns by 30 s."""
    threads = max(1, min(threads, concurrency))
    argv = ["wrk", "--latency", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout_s))}s", "-s", str(script), url]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        output, _ = proc.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"wrk overran {seconds + 30}s: {' '.join(argv)}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return parse(output.decode(errors="replace"), concurrency)

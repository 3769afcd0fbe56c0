"""Every module imports on its own in a fresh interpreter: no import circle, however the import starts.

aiohttp's ``tests/test_circular_imports.py`` is the pattern: a module that only
imports when another one was imported first hides a circle that a new entry
point (a test, a tool, a worker) trips over.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import proxy

ROOT = Path(__file__).resolve().parent.parent


def all_modules() -> list[str]:
    """Every module of the ``proxy`` package, subpackages included."""
    names = ["proxy"]
    for info in pkgutil.walk_packages(proxy.__path__, prefix="proxy."):
        names.append(info.name)
    return sorted(names)


def test_the_walk_finds_the_whole_tree() -> None:
    modules = all_modules()
    assert "proxy.upstream.fallback" in modules and "proxy.formats.anthropic.stream" in modules
    files = {p for p in (ROOT / "proxy").rglob("*.py")}
    assert len(modules) == len(files)


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    def import_alone(name: str) -> tuple[str, int, str]:
        done = subprocess.run([sys.executable, "-W", "error::ImportWarning", "-c", f"import {name}"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
        return name, done.returncode, done.stderr[-2000:]

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [result for result in pool.map(import_alone, all_modules()) if result[1] != 0]
    assert not failures, "\n\n".join(f"{name}:\n{err}" for name, _, err in failures)

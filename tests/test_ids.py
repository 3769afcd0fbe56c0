"""Request ids and record ids."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from proxy.ids import new_request_id, unique_id


def test_request_ids_are_32_hex_and_differ() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_unique_ids_never_repeat_in_a_process_or_across_processes() -> None:
    mine = {unique_id() for _ in range(10_000)}
    assert len(mine) == 10_000
    code = "from proxy.ids import unique_id; print(' '.join(unique_id() for _ in range(1000)))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout.split()
    assert len(other) == 1000 and not mine & set(other)


def test_a_forked_child_draws_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, (unique_id() + " " + new_request_id()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_unique, child_request = os.read(read, 200).decode().split()
    assert child_unique[:16] != unique_id()[:16]
    assert child_request != new_request_id()

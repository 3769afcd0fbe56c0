"""End-to-end benchmark of the gateway against a bare pass-through floor.

Run it with ``.venv/bin/python -m tests.bench.run`` (see ``tests/bench/README.md``).
Nothing here is collected by pytest (``setup.cfg``: ``norecursedirs = tests/bench``).
"""

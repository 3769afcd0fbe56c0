"""OpenAI's tokenizers from the tables inside the bpe-openai package (``proxy/tokens/bpe.py``).

* counts are the package's own tiktoken-compatible encodings', token for token;
* building them reads no table file and opens no connection;
* the package still imports and works afterwards (the extension is shared, not loaded twice).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.tokens import bpe

ROOT = Path(__file__).resolve().parents[2]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@pytest.mark.filterwarnings("ignore:open_binary is deprecated:DeprecationWarning")
@pytest.mark.parametrize("encoding", bpe.ENCODINGS)
@settings(max_examples=150, deadline=None, database=None)
@given(text=TEXT)
def test_counts_are_the_packages_own_encodings(encoding: str, text: str) -> None:
    assert bpe.counter(encoding)(text) == len(package_encoding(encoding).encode(text, disallowed_special=()))


@lru_cache(maxsize=None)
def package_encoding(encoding: str) -> Any:
    """The package's own tiktoken-compatible encoding (slow to build: once per test run)."""
    import bpe_openai

    return bpe_openai.get_encoding(encoding)


@pytest.mark.parametrize("encoding, text, tokens", [
    ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
])
def test_ids_are_tiktokens(encoding: str, text: str, tokens: list[int]) -> None:
    """The token ids OpenAI's cookbook shows for tiktoken."""
    assert bpe.tokenizer(encoding).encode(text) == tokens


def test_an_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="p50k_base"):
        bpe.tokenizer("p50k_base")


def test_tables_come_from_the_package_with_no_file_read_and_no_network() -> None:
    """A fresh interpreter that refuses sockets builds both tokenizers without reading a table file."""
    script = textwrap.dedent("""
        import socket, sys

        def refuse(*args, **kwargs):
            raise AssertionError("the tokenizer tried the network")

        socket.socket.connect = socket.socket.connect_ex = refuse
        socket.create_connection = socket.getaddrinfo = refuse
        opened = []
        sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)

        from proxy.tokens import bpe
        counts = [bpe.counter(name)("hello world") for name in bpe.ENCODINGS]
        tables = [path for path in opened if "tiktoken" in path or path.endswith(".gz")]
        assert not tables, tables
        print(counts)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 2]"


def test_the_package_still_imports_after_the_gateway_loaded_its_extension() -> None:
    script = textwrap.dedent("""
        from proxy.tokens import bpe
        ours = bpe.counter("cl100k_base")("hello world")
        import bpe_openai
        print(ours, len(bpe_openai.get_encoding("cl100k_base").encode("hello world")))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 2"

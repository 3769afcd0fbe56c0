"""OpenAI's tokenizers, from the tables that ship inside the ``bpe-openai`` package.

``bpe-openai`` wraps the Rust ``bpe-openai`` crate, whose tokenizers for
``cl100k_base`` and ``o200k_base`` are compiled into the package's extension
module: building one reads no file and opens no connection (checked with the
network refused, see the tests). Counts are tiktoken's, token for token.

Only the extension module (``bpe_openai._bindings``) is loaded, straight from
the installed package's folder. Importing the package itself would also parse
the package's gzipped Python copies of every table, which its
tiktoken-compatible ``Encoding`` class needs and counting does not (about 0.5 s
and 65 MB per process). The module is registered under its own name, so a later
``import bpe_openai`` finds it and works as usual.

Costs, once per process and encoding, on first use: ``cl100k_base`` about
0.03 s and 32 MB, ``o200k_base`` about 0.06 s and 64 MB. :func:`preload` lets
the caller pay that when a config is loaded, not in a request.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Protocol

ENCODINGS = ("cl100k_base", "o200k_base")
"""The encodings counted exactly."""

_MODULE = "bpe_openai._bindings"


class Tokenizer(Protocol):
    """What the extension module's tokenizer offers and this gateway uses."""

    def count(self, text: str) -> int: ...

    def encode(self, text: str) -> list[int]: ...


def tokenizer(encoding: str) -> Tokenizer:
    """The tokenizer of ``encoding`` (one of :data:`ENCODINGS`), built on first use."""
    if encoding not in ENCODINGS:
        raise ValueError(f"no bundled tokenizer for {encoding!r}; known: {', '.join(ENCODINGS)}")
    return _tokenizer(encoding)


def counter(encoding: str) -> Callable[[str], int]:
    """A function giving the number of tokens of a text in ``encoding``."""
    return tokenizer(encoding).count


def preload(encodings: Iterable[str]) -> None:
    """Build the tokenizers of ``encodings`` now (for a config's models, before requests need them)."""
    for encoding in encodings:
        tokenizer(encoding)


@lru_cache(maxsize=None)
def _tokenizer(encoding: str) -> Tokenizer:
    return _bindings().tokenizer_for_encoding(encoding)


def _bindings() -> ModuleType:
    """The extension module, loaded without the package's own ``__init__``."""
    loaded = sys.modules.get(_MODULE)
    if loaded is not None:
        return loaded
    path = _extension_path()
    if path is None:  # an unusual install: let the package import it
        return importlib.import_module(_MODULE)
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[_MODULE] = module
    return module


def _extension_path() -> Path | None:
    """Where the installed package keeps its extension module (the package is not imported)."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the bpe-openai package is not installed (pip install bpe-openai)")
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_bindings{suffix}"
            if path.is_file():
                return path
    return None

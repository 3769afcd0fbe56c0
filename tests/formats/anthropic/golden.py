"""The golden vectors under ``tests/data/golden/`` (see its README), loaded for the translation tests.

Each vector pairs a Chat Completions document with an Anthropic Messages one
and lists the ``directions`` in which the pair holds exactly: ``inbound`` (a
Messages caller in front of an OpenAI-style upstream: Messages request to
Chat request, Chat answer and stream to Messages) and ``outbound`` (a Chat
caller in front of Anthropic: the reverse). The replay helpers run a stream's
raw bytes, cut into any pieces, through the real SSE parser and a translator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson
import pytest

from proxy.formats.anthropic.inbound_stream import MessagesStreamTranslator, encode_events
from proxy.formats.anthropic.stream import StreamTranslator
from proxy.formats.sse import DONE, SSEParser

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden"
CREATED = 1700000000
"""The ``created`` of the outbound vectors' Chat side."""


def _load(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def documents(kind: str, direction: str) -> list[Any]:
    """The ``requests`` or ``answers`` vectors that hold in ``direction``, as pytest params."""
    files = sorted((GOLDEN / kind).glob("*.json"))
    assert files, f"no vectors under {GOLDEN / kind}"
    return [pytest.param(vector, id=path.stem) for path in files
            if direction in (vector := _load(path))["directions"]]


def refusals() -> list[Any]:
    """The Messages requests the inbound translation must refuse, with the field each names."""
    return [pytest.param(case, id=case["name"]) for case in _load(GOLDEN / "refusals.json")]


@dataclass(frozen=True)
class StreamVector:
    """One stream vector: the raw bytes of both sides."""

    name: str
    description: str
    chat: bytes
    messages: bytes


def streams(direction: str) -> list[Any]:
    """The stream vectors that hold in ``direction``, as pytest params."""
    folders = sorted(p for p in (GOLDEN / "streams").iterdir() if p.is_dir())
    assert folders, "no stream vectors"
    found = []
    for folder in folders:
        meta = _load(folder / "vector.json")
        if direction in meta["directions"]:
            vector = StreamVector(folder.name, meta["description"], (folder / "chat.sse").read_bytes(),
                                  (folder / "messages.sse").read_bytes())
            found.append(pytest.param(vector, id=folder.name))
    return found


def payloads(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The ``data`` of every event the SSE parser finds in ``pieces``, the stream's end flushed."""
    parser = SSEParser()
    for piece in pieces:
        for event in parser.feed(piece):
            yield event.data
    for event in parser.flush():
        yield event.data


def replay_inbound(pieces: Iterable[bytes], **options: Any) -> bytes:
    """A Chat stream's bytes through the parser and :class:`MessagesStreamTranslator`: the Messages bytes."""
    translator = MessagesStreamTranslator(**options)
    events: list[dict[str, Any]] = []
    for data in payloads(pieces):
        events += translator.finish() if data == DONE else translator.feed(orjson.loads(data))
    events += translator.finish()
    return encode_events(events)


def replay_outbound(pieces: Iterable[bytes]) -> tuple[list[dict[str, Any]], StreamTranslator]:
    """A Messages stream's bytes through the parser and the outbound :class:`StreamTranslator`."""
    translator = StreamTranslator(include_usage=True, created=CREATED)
    chunks = [chunk for data in payloads(pieces) for chunk in translator.translate(orjson.loads(data))]
    return chunks, translator


def chat_chunks(data: bytes) -> list[dict[str, Any]]:
    """The chunk payloads of a Chat stream's bytes (``[DONE]`` left out)."""
    return [orjson.loads(payload) for payload in payloads([data]) if payload != DONE]


def messages_events(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """The ``(event name, data)`` pairs of a Messages stream's bytes."""
    parser = SSEParser()
    return [(event.name, orjson.loads(event.data)) for event in parser.feed(data) + parser.flush()]


def two_pieces(data: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """``data`` cut in two at every byte boundary: ``(offset, [head, tail])``."""
    for offset in range(1, len(data)):
        yield offset, [data[:offset], data[offset:]]


def byte_by_byte(data: bytes) -> list[bytes]:
    """``data`` one byte at a time."""
    return [data[i:i + 1] for i in range(len(data))]

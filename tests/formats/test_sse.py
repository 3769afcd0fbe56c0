"""The SSE parser gives the same events however the bytes are split."""

from __future__ import annotations

import random

import pytest

from proxy.formats.sse import MAX_EVENT_BYTES, SSEParser, SSEProtocolError

STREAM = (
    b": OPENROUTER PROCESSING\n\n"
    b"event: message_start\ndata: {\"a\": 1}\n\n"
    b"data: {\"b\": 2}\n\n"
    b"data: line one\ndata: line two\n\n"
    b"event: ping\ndata: {}\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ("message_start", b'{"a": 1}'),
    (None, b'{"b": 2}'),
    (None, b"line one\nline two"),
    ("ping", b"{}"),
    (None, b"[DONE]"),
]


def _parse(pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    parser = SSEParser()
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.flush())
    return [(e.name, e.data) for e in events]


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    pieces, i = [], 0
    while i < len(data):
        n = rng.randint(1, 9)
        pieces.append(data[i:i + n])
        i += n
    return pieces


def test_whole_stream_in_one_piece() -> None:
    assert _parse([STREAM]) == EXPECTED


@pytest.mark.parametrize("seed", range(25))
def test_any_split_gives_the_same_events(seed: int) -> None:
    assert _parse(_split(STREAM, random.Random(seed))) == EXPECTED


@pytest.mark.parametrize("seed", range(10))
def test_crlf_line_endings_split_anywhere(seed: int) -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert _parse(_split(crlf, random.Random(seed))) == EXPECTED


def test_byte_by_byte() -> None:
    assert _parse([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_crlf_byte_by_byte() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert _parse([crlf[i:i + 1] for i in range(len(crlf))]) == EXPECTED


@pytest.mark.parametrize("piece_size", [7, 4096, 65536])
def test_an_event_over_128_kib_passes_intact(piece_size: int) -> None:
    big = b'{"text": "' + b"x" * (200 * 1024) + b'"}'
    data = b"data: " + big + b"\n\ndata: [DONE]\n\n"
    pieces = [data[i:i + piece_size] for i in range(0, len(data), piece_size)]
    assert _parse(pieces) == [(None, big), (None, b"[DONE]")]


def test_last_event_without_trailing_blank_line_is_flushed() -> None:
    assert _parse([b"data: {}\n\ndata: [DONE]"]) == [(None, b"{}"), (None, b"[DONE]")]


def test_comment_only_stream_yields_nothing() -> None:
    assert _parse([b": keep-alive\n\n: again\n\n"]) == []


def test_runaway_event_is_refused() -> None:
    parser = SSEParser()
    with pytest.raises(SSEProtocolError):
        for _ in range(MAX_EVENT_BYTES // (1024 * 1024) + 2):
            parser.feed(b"x" * 1024 * 1024)

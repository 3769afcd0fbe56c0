"""Anthropic Messages streams as Chat Completions chunks: the golden stream vectors that hold ``outbound``.

Each vector's Messages bytes, whole, byte by byte and cut in two at every
byte boundary, through the real SSE parser and the outbound
:class:`StreamTranslator` give exactly the chunks of the vector's Chat bytes.
"""

from __future__ import annotations

import pytest

from tests.formats.anthropic.golden import (
    StreamVector,
    byte_by_byte,
    chat_chunks,
    replay_outbound,
    streams,
    two_pieces,
)

OUTBOUND = streams("outbound")


@pytest.mark.parametrize("vector", OUTBOUND)
def test_whole_stream(vector: StreamVector) -> None:
    chunks, translator = replay_outbound([vector.messages])
    assert chunks == chat_chunks(vector.chat)
    assert translator.finished


@pytest.mark.parametrize("vector", OUTBOUND)
def test_byte_by_byte(vector: StreamVector) -> None:
    assert replay_outbound(byte_by_byte(vector.messages))[0] == chat_chunks(vector.chat)


@pytest.mark.parametrize("vector", OUTBOUND)
def test_cut_in_two_at_every_byte(vector: StreamVector) -> None:
    expected = chat_chunks(vector.chat)
    for offset, pieces in two_pieces(vector.messages):
        assert replay_outbound(pieces)[0] == expected, f"cut at byte {offset}"

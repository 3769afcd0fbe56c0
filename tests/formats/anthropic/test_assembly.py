"""Messages event streams to a whole message and back: assembled for the cache, replayed from it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.formats.anthropic.assembly import MessageAssembler, assemble, message_events
from proxy.formats.anthropic.inbound_stream import encode_events
from tests.fake_anthropic import FakeAnthropic, sse_event, text_block, thinking_block, tool_use_block
from tests.formats.anthropic.golden import StreamVector, documents, streams

BLOCKS = [thinking_block("Check the weather first."), text_block("Looking it up."),
          tool_use_block("toolu_01A", "get_weather", {"city": "Paris", "days": [1, 2]}),
          {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}]


def test_an_anthropic_stream_assembles_into_the_message_it_streamed() -> None:
    fake = FakeAnthropic(blocks=BLOCKS, stop_reason="tool_use", chunks=3)
    body = {"model": "claude-sonnet-4-6"}
    assembler = MessageAssembler()
    for name, doc in fake.stream_events(body):
        assembler.add_sse(sse_event(name, doc))
    assert assembler.message() == fake.message(body)


def test_a_stream_that_did_not_end_is_never_a_message() -> None:
    fake = FakeAnthropic(blocks=BLOCKS, error_event_after=2)
    events = [doc for _, doc in fake._interrupted(fake.stream_events({"model": "m"}))]
    assert assemble(events) is None
    assert assemble([doc for _, doc in fake.stream_events({"model": "m"})][:-1]) is None
    broken = MessageAssembler()
    broken.add_sse(b"event: message_start\ndata: {not json\n\n")
    assert broken.message() is None


@pytest.mark.parametrize("vector", documents("answers", "inbound"))
def test_a_stored_message_replays_as_events_that_build_it_again(vector: dict[str, Any]) -> None:
    message = vector["messages"]
    events = message_events(message)
    assert [e["type"] for e in events[:2]] == ["message_start", "ping"]
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    assert assemble(events) == message
    assert assemble(orjson.loads(orjson.dumps(events))) == message


def test_replayed_blocks_other_than_text_thinking_and_tools_come_whole() -> None:
    message = FakeAnthropic(blocks=BLOCKS).message({"model": "m"})
    starts = [e["content_block"] for e in message_events(message) if e["type"] == "content_block_start"]
    assert starts[3] == BLOCKS[3]
    assert starts[2]["input"] == {} and starts[1]["text"] == "" and starts[0]["signature"] == ""


@pytest.mark.parametrize("vector", streams("inbound"))
def test_golden_messages_streams_assemble_and_replay_to_the_same_message(vector: StreamVector) -> None:
    assembler = MessageAssembler()
    assembler.add_sse(vector.messages)
    message = assembler.message()
    if b"event: error" in vector.messages:
        assert message is None
        return
    assert message is not None and message["stop_reason"]
    again = MessageAssembler()
    again.add_sse(encode_events(message_events(message)))
    assert again.message() == message

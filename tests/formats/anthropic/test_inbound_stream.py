"""Chat Completions streams as Anthropic Messages event streams (the inbound stream translator).

* Golden stream vectors: a Chat stream's raw bytes, whole, byte by byte, cut
  in two at every byte boundary and with CRLF line ends, through the real SSE
  parser and :class:`MessagesStreamTranslator` give exactly the vector's
  Messages bytes.
* What the anthropic SDK makes of the events: every event validates as the
  SDK's stream event type, and the SDK's own accumulation of them is the
  plain-answer translation of the same stream's assembled answer.
* The translator's rules one by one, and odd chunks never raise.
"""

from __future__ import annotations

from typing import Any

import orjson
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.formats.anthropic.inbound_response import to_messages_response
from proxy.formats.anthropic.inbound_stream import (
    PING_BYTES,
    MessagesStreamTranslator,
    encode_event,
    encode_events,
)
from proxy.formats.stream_assembly import CompletionAssembler
from tests.formats.anthropic.golden import (
    StreamVector,
    byte_by_byte,
    chat_chunks,
    messages_events,
    replay_inbound,
    streams,
    two_pieces,
)

INBOUND = streams("inbound")
SDK_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)

# ============================================================== golden vectors


@pytest.mark.parametrize("vector", INBOUND)
def test_whole_stream(vector: StreamVector) -> None:
    assert replay_inbound([vector.chat]).decode() == vector.messages.decode()


@pytest.mark.parametrize("vector", INBOUND)
def test_byte_by_byte(vector: StreamVector) -> None:
    assert replay_inbound(byte_by_byte(vector.chat)) == vector.messages


@pytest.mark.parametrize("vector", INBOUND)
def test_cut_in_two_at_every_byte(vector: StreamVector) -> None:
    for offset, pieces in two_pieces(vector.chat):
        assert replay_inbound(pieces) == vector.messages, f"cut at byte {offset}"


@pytest.mark.parametrize("vector", INBOUND)
def test_crlf_line_ends_byte_by_byte(vector: StreamVector) -> None:
    crlf = vector.chat.replace(b"\n", b"\r\n")
    assert replay_inbound(byte_by_byte(crlf)) == vector.messages


@pytest.mark.parametrize("vector", INBOUND)
def test_every_event_is_one_the_sdk_knows(vector: StreamVector) -> None:
    events = messages_events(replay_inbound([vector.chat]))
    assert events[0][0] == "message_start" and events[1][0] == "ping"
    for name, data in events:
        assert name == data["type"], "the SSE event name is the event's type"
        if name not in ("ping", "error"):  # the SDK skips pings and raises on errors by name
            SDK_EVENT.validate_python(data)


def sdk_final_message(data: bytes) -> dict[str, Any]:
    """What the anthropic SDK's ``messages.stream(...).get_final_message()`` builds from the events."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for name, event in messages_events(data):
        if name != "ping":
            snapshot = accumulate_event(event=SDK_EVENT.validate_python(event),
                                        current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    return Message.model_validate(snapshot.to_dict()).model_dump(exclude_none=True)


# Not for a failed stream, nor for text on both sides of a tool call (a plain Chat answer has one text).
WHOLE = [v for v in INBOUND if v.id not in ("error_mid_stream", "interleaved")]


@pytest.mark.parametrize("vector", WHOLE)
def test_the_sdk_final_message_is_the_plain_translation(vector: StreamVector) -> None:
    """Streamed or not, a caller gets the same message (thinking aside: the assembler keeps none)."""
    assembler = CompletionAssembler()
    for chunk in chat_chunks(vector.chat):
        assembler.add(orjson.dumps(chunk))
    plain = to_messages_response(assembler.completion())
    streamed = sdk_final_message(replay_inbound([vector.chat]))
    streamed["content"] = [block for block in streamed["content"] if block["type"] != "thinking"]
    assert streamed == Message.model_validate(plain).model_dump(exclude_none=True)

# =================================================================== the rules


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-x",
                           "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    doc.update(fields)
    return doc


def run(chunks: list[Any], **options: Any) -> list[dict[str, Any]]:
    translator = MessagesStreamTranslator(**options)
    events = [event for c in chunks for event in translator.feed(c)]
    return events + translator.finish()


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def test_an_empty_stream_still_makes_a_whole_message() -> None:
    events = run([])
    assert kinds(events) == ["message_start", "ping", "message_delta", "message_stop"]
    assert events[0]["message"]["id"].startswith("msg_")
    assert events[2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_the_input_token_estimate_goes_in_message_start() -> None:
    events = run([chunk({"content": "hi"})], input_tokens=321)
    assert events[0]["message"]["usage"]["input_tokens"] == 321


def test_usage_on_the_first_chunk_beats_the_estimate() -> None:
    first = chunk({"content": "hi"}, usage={"prompt_tokens": 50, "completion_tokens": 1})
    assert run([first], input_tokens=321)[0]["message"]["usage"]["input_tokens"] == 50


def test_message_id_and_model_can_be_given() -> None:
    events = run([chunk({"content": "hi"})], message_id="msg_given", model="claude-alias")
    assert (events[0]["message"]["id"], events[0]["message"]["model"]) == ("msg_given", "claude-alias")


def test_a_late_piece_of_an_earlier_tool_call_goes_to_its_block() -> None:
    """No upstream is known to do it; the SDKs accumulate deltas by index, so the input is still whole."""
    events = run([
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{\"x\":"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
    ])
    final = sdk_final_message(encode_events(events))
    assert [(b["name"], b["input"]) for b in final["content"]] == [("f", {"x": 1}), ("g", {})]


def test_a_tool_call_without_id_or_index_gets_an_id() -> None:
    events = run([chunk({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}), chunk({}, "stop")])
    block = next(e["content_block"] for e in events if e["type"] == "content_block_start")
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_") and block["name"] == "f"
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_vllm_stop_string_is_a_stop_sequence() -> None:
    events = run([chunk({"content": "1, 2"}), {"id": "x", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "3"}]}])
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "3"}


def test_an_openai_refusal_is_text_and_a_refusal() -> None:
    events = run([chunk({"refusal": "I can't."}), chunk({}, "stop")])
    assert [e["delta"] for e in events if e["type"] == "content_block_delta"] == [
        {"type": "text_delta", "text": "I can't."}]
    assert events[-2]["delta"]["stop_reason"] == "refusal"


def test_other_choices_are_ignored() -> None:
    events = run([{"id": "x", "choices": [{"index": 1, "delta": {"content": "other"}}]}])
    assert "content_block_start" not in kinds(events)


def test_fail_sends_one_error_event_and_nothing_after() -> None:
    translator = MessagesStreamTranslator()
    translator.feed(chunk({"content": "partial"}))
    assert translator.fail(504, "The upstream timed out.", "upstream_timeout") == [
        {"type": "error", "error": {"type": "timeout_error", "message": "The upstream timed out."}}]
    assert translator.finished
    assert translator.feed(chunk({"content": "more"})) == [] and translator.finish() == []
    assert translator.fail(500, "again") == []


def test_nothing_after_message_stop() -> None:
    translator = MessagesStreamTranslator()
    translator.finish()
    assert translator.feed(chunk({"content": "late"})) == [] and translator.fail(500, "late") == []


def test_usage_is_reported_in_anthropic_shape() -> None:
    translator = MessagesStreamTranslator()
    translator.feed({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2,
                                              "prompt_tokens_details": {"cached_tokens": 4}}})
    assert translator.usage() == {"input_tokens": 6, "cache_creation_input_tokens": 0,
                                  "cache_read_input_tokens": 4, "output_tokens": 2}

# ================================================================ serialising


def test_an_event_is_framed_with_its_type_as_the_event_name() -> None:
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "é\n"}}
    assert encode_event(event) == (b'event: content_block_delta\ndata: {"type":"content_block_delta",'
                                   b'"index":0,"delta":{"type":"text_delta","text":"\xc3\xa9\\n"}}\n\n')
    assert messages_events(encode_event(event)) == [("content_block_delta", event)]


def test_ping_bytes() -> None:
    assert PING_BYTES == b'event: ping\ndata: {"type":"ping"}\n\n'

# ================================================================ odd chunks


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
pieces = st.fixed_dictionaries({}, optional={
    "index": st.integers(0, 3) | json_scalars, "id": st.text(max_size=5) | json_scalars,
    "function": st.fixed_dictionaries({}, optional={"name": st.text(max_size=5) | json_scalars,
                                                    "arguments": st.text(max_size=8) | json_scalars}),
}) | json_values
deltas = st.fixed_dictionaries({}, optional={
    "content": st.text(max_size=8) | json_values, "reasoning_content": st.text(max_size=8) | json_scalars,
    "reasoning": st.text(max_size=8), "refusal": st.text(max_size=8) | json_scalars,
    "tool_calls": st.lists(pieces, max_size=3) | json_scalars,
}) | json_values
chunks = st.fixed_dictionaries({}, optional={
    "id": json_scalars, "model": json_scalars, "usage": json_values,
    "choices": st.lists(st.fixed_dictionaries({}, optional={
        "index": st.sampled_from([0, 1]) | json_scalars, "delta": deltas,
        "finish_reason": st.sampled_from(["stop", "length", "tool_calls", "content_filter"]) | json_scalars,
    }) | json_values, max_size=2) | json_scalars,
}) | json_values


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunks, max_size=8))
def test_odd_chunks_still_make_a_well_formed_stream(stream: list[Any]) -> None:
    events = run(stream)
    encode_events(events)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    open_blocks: set[int] = set()
    started: list[int] = []
    for event in events[1:-1]:
        if event["type"] == "content_block_start":
            assert event["index"] == len(started), "blocks are numbered in the order they begin"
            started.append(event["index"])
            open_blocks.add(event["index"])
        elif event["type"] == "content_block_stop":
            open_blocks.remove(event["index"])
        elif event["type"] == "content_block_delta":
            assert event["index"] in started
        if event["type"] != "ping":
            SDK_EVENT.validate_python(event)
    assert not open_blocks, "every block is stopped before message_delta"
    sdk_final_message(encode_events(events))

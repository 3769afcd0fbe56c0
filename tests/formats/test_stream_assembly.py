"""A stream's chunks to one answer and back."""

from __future__ import annotations

import orjson

from proxy.formats.stream_assembly import (
    CompletionAssembler,
    include_usage_requested,
    replay_chunks,
)

ANSWER = {
    "provider": "openai", "id": "chatcmpl-1", "created": 5, "model": "gpt-4o",
    "object": "chat.completion",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
        "role": "assistant", "content": "Checking.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}},
                       {"id": "call_2", "type": "function", "function": {"name": "other", "arguments": "{}"}}]}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


def test_replay_then_assemble_round_trips() -> None:
    assembler = CompletionAssembler()
    for chunk in replay_chunks(ANSWER, include_usage=True):
        assembler.add(chunk)
    assert assembler.complete
    assert assembler.completion() == ANSWER


def test_usage_chunk_only_when_asked() -> None:
    chunks = [orjson.loads(c) for c in replay_chunks(ANSWER, include_usage=False)]
    assert all(c["choices"] for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_arguments_split_across_chunks_are_joined() -> None:
    head = {"id": "x", "created": 1, "model": "m"}
    pieces = [
        {"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                               "function": {"name": "f", "arguments": ""}}]}, "finish_reason": None},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}, "finish_reason": None},
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
    ]
    assembler = CompletionAssembler()
    for choice in pieces:
        assembler.add(orjson.dumps({**head, "choices": [choice]}))
    message = assembler.completion()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}


def test_unfinished_stream_is_not_complete() -> None:
    assembler = CompletionAssembler()
    assembler.add(orjson.dumps({"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}}]}))
    assert not assembler.complete


def test_include_usage_requested() -> None:
    assert include_usage_requested({"stream_options": {"include_usage": True}})
    assert not include_usage_requested({"stream_options": None})
    assert not include_usage_requested({})


def _content_chunk(text: str, finish: str | None = None) -> bytes:
    return orjson.dumps({"id": "c", "created": 1, "model": "m", "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


def test_a_long_stream_assembles_in_order_across_folds() -> None:
    assembler = CompletionAssembler()
    words = [f"w{i} " for i in range(3 * CompletionAssembler.FOLD_EVERY + 5)]
    for start in range(0, len(words), 7):  # batches of several chunks, as reads bring them
        assembler.add_batch([_content_chunk(w) for w in words[start:start + 7]])
    assembler.add(_content_chunk("", finish="stop"))
    assert assembler.complete
    assert assembler.completion()["choices"][0]["message"]["content"] == "".join(words)


def test_a_chunk_that_is_not_json_leaves_the_answer_incomplete() -> None:
    assembler = CompletionAssembler()
    assembler.add_batch([_content_chunk("a"), b"{not json", _content_chunk("b", finish="stop")])
    assert not assembler.complete and assembler.broken


def _answer(*choices: dict) -> dict:
    return {"id": "chatcmpl-2", "created": 7, "model": "m", "object": "chat.completion",
            "choices": [{"index": i, "logprobs": None, **c} for i, c in enumerate(choices)],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


TOOL_ONLY = {"finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}


def _assembled(chunks) -> dict:
    assembler = CompletionAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    assert assembler.complete
    return assembler.completion()


def test_a_tool_call_without_content_replays_with_null_content_as_openai_streams_it() -> None:
    answer = _answer(TOOL_ONLY)
    chunks = [orjson.loads(c) for c in replay_chunks(answer, include_usage=False)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"] == TOOL_ONLY["message"]["tool_calls"][0][
        "function"]
    assert _assembled(replay_chunks(answer, include_usage=True)) == answer


def test_several_choices_replay_and_assemble_each_in_its_place() -> None:
    answer = _answer(TOOL_ONLY, {"finish_reason": "stop", "message": {"role": "assistant", "content": "two"}},
                     {"finish_reason": "length", "message": {"role": "assistant", "content": "thr"}})
    assert _assembled(replay_chunks(answer, include_usage=True)) == answer


def test_interleaved_choices_assemble_by_index() -> None:
    head = {"id": "x", "created": 1, "model": "m", "object": "chat.completion.chunk"}

    def chunk(index, delta, finish=None):
        return orjson.dumps({**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})

    stream = [chunk(0, {"role": "assistant", "content": ""}), chunk(1, {"role": "assistant", "content": None,
              "tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                              "function": {"name": "f", "arguments": ""}}]}),
              chunk(0, {"content": "hel"}),
              chunk(1, {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
              chunk(0, {"content": "lo"}),
              chunk(1, {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
              chunk(0, {}, "stop")]
    assembler = CompletionAssembler()
    assembler.add_batch(stream)
    assert not assembler.complete  # choice 1 has not finished
    assembler.add(chunk(1, {}, "tool_calls"))
    assert assembler.complete
    choices = assembler.completion()["choices"]
    assert choices[0]["message"] == {"role": "assistant", "content": "hello"}
    assert choices[1]["message"]["content"] is None
    assert choices[1]["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]
    assert [c["finish_reason"] for c in choices] == ["stop", "tool_calls"]


def test_empty_content_is_an_empty_string_and_refusals_round_trip() -> None:
    empty = _answer({"finish_reason": "stop", "message": {"role": "assistant", "content": ""}})
    assert _assembled(replay_chunks(empty, include_usage=True)) == empty
    refused = _answer({"finish_reason": "stop", "message": {"role": "assistant", "content": None,
                                                           "refusal": "I can't help with that."}})
    chunks = [orjson.loads(c)["choices"][0]["delta"] for c in replay_chunks(refused, include_usage=False)]
    assert {"refusal": "I can't help with that."} in chunks
    assert _assembled(replay_chunks(refused, include_usage=True)) == refused

"""Chat Completions answers as Anthropic Messages answers (the inbound answer translation).

* Golden answer vectors (``inbound``): each Chat answer gives exactly its
  message, one the anthropic SDK's ``Message`` type accepts.
* Stop reasons, usage (the inverse of the outbound usage mapping), ids, and
  odd answers that never raise.
"""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.formats.anthropic.inbound_response import (
    messages_usage,
    stop_reason_for,
    to_messages_response,
)
from proxy.formats.anthropic.response import to_openai_usage
from tests.formats.anthropic.golden import documents

PURE = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("vector", documents("answers", "inbound"))
def test_answer_vector(vector: dict[str, Any]) -> None:
    answer = to_messages_response(vector["chat"])
    assert answer == vector["messages"]
    Message.model_validate(answer)


def test_message_id_and_model_can_be_given() -> None:
    answer = to_messages_response({"id": "chatcmpl-1", "model": "gpt-4o"}, message_id="msg_x", model="claude")
    assert (answer["id"], answer["model"]) == ("msg_x", "claude")


def test_an_answer_without_id_gets_a_fresh_one() -> None:
    first, second = to_messages_response({}), to_messages_response({})
    assert first["id"].startswith("msg_") and second["id"].startswith("msg_") and first["id"] != second["id"]


def test_a_tool_call_without_id_gets_one() -> None:
    answer = to_messages_response({"choices": [{"message": {"tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]})
    assert answer["content"][0]["id"].startswith("toolu_")


@pytest.mark.parametrize("finish,tools,matched,expected", [
    ("stop", False, None, ("end_turn", None)),
    ("stop", False, "END", ("stop_sequence", "END")),
    ("length", False, None, ("max_tokens", None)),
    ("tool_calls", True, None, ("tool_use", None)),
    ("function_call", True, None, ("tool_use", None)),
    ("stop", True, None, ("tool_use", None)),
    (None, True, None, ("tool_use", None)),
    ("length", True, None, ("max_tokens", None)),
    ("content_filter", False, None, ("refusal", None)),
    ("content_filter", True, None, ("refusal", None)),
    (None, False, None, ("end_turn", None)),
    ("something_new", False, None, ("end_turn", None)),
    (["odd"], False, 7, ("end_turn", None)),
])
def test_stop_reasons(finish: Any, tools: bool, matched: Any, expected: tuple[str, str | None]) -> None:
    assert stop_reason_for(finish, has_tool_use=tools, matched_stop=matched) == expected


counts = st.integers(min_value=0, max_value=2**40)


@PURE
@given(counts, counts, counts, counts)
def test_usage_is_the_inverse_of_the_outbound_mapping(inp: int, out: int, read: int, written: int) -> None:
    usage = {"input_tokens": inp, "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
             "output_tokens": out}
    assert messages_usage(to_openai_usage(usage)) == usage


def test_cache_counts_above_the_prompt_leave_no_negative_input() -> None:
    usage = {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 50}}
    assert messages_usage(usage)["input_tokens"] == 0

# ================================================================= odd answers


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
calls = st.fixed_dictionaries({}, optional={
    "id": json_scalars, "type": json_scalars,
    "function": st.fixed_dictionaries({}, optional={"name": json_scalars, "arguments": json_values}) | json_values,
}) | json_values
messages = st.fixed_dictionaries({}, optional={
    "content": json_values, "refusal": json_scalars, "reasoning_content": json_scalars, "reasoning": json_scalars,
    "tool_calls": st.lists(calls, max_size=3) | json_scalars,
}) | json_values
answers = st.fixed_dictionaries({}, optional={
    "id": json_scalars, "model": json_scalars,
    "choices": st.lists(st.fixed_dictionaries({}, optional={
        "message": messages, "finish_reason": json_values, "stop_reason": json_values}) | json_values,
        max_size=2) | json_scalars,
    "usage": json_values | st.dictionaries(st.sampled_from([
        "prompt_tokens", "completion_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
        "prompt_tokens_details"]), json_values),
}) | json_values


@PURE
@given(answers)
def test_an_odd_answer_still_gives_a_message_the_sdk_accepts(doc: Any) -> None:
    answer = to_messages_response(doc)
    Message.model_validate(answer)
    assert all(type(n) is int and n >= 0 for n in answer["usage"].values())

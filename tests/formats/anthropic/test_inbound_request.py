"""Anthropic Messages requests as Chat Completions requests (the inbound request translation).

* Golden request vectors (``inbound``): each Messages body gives exactly its
  Chat body, the caller's body left as it was, and the result is a body the
  gateway's Chat Completions endpoint accepts (its JSON schema).
* Golden refusals: each is a 400 whose ``param`` names the exact field.
* The rules one by one, and near-valid bodies never crash the translation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.errors import GatewayError
from proxy.formats.anthropic.inbound_request import (
    DEFAULT_PDF_NAME,
    IGNORED_FIELDS,
    effort_for_budget,
    to_chat_request,
)
from tests.formats.anthropic.golden import GOLDEN, documents, refusals

CHAT_SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "proxy" / "schemas"
                          / "chat_completions.schema.json").read_text())
VECTORS = documents("requests", "inbound")


def refused(body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        to_chat_request(body)
    assert caught.value.status == 400 and caught.value.message
    return caught.value


def body(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": "claude", "max_tokens": 100,
                           "messages": [{"role": "user", "content": "Hi"}]}
    doc.update(fields)
    return doc

# ============================================================== golden vectors


@pytest.mark.parametrize("vector", VECTORS)
def test_request_vector(vector: dict[str, Any]) -> None:
    given_body = vector["messages"]
    before = copy.deepcopy(given_body)
    assert to_chat_request(given_body) == vector["chat"]
    assert given_body == before, "the caller's body must not be modified"


@pytest.mark.parametrize("vector", VECTORS)
def test_the_result_is_a_body_the_chat_endpoint_accepts(vector: dict[str, Any]) -> None:
    jsonschema.validate(to_chat_request(vector["messages"]), CHAT_SCHEMA)


def test_changing_the_result_leaves_the_callers_body_alone() -> None:
    vector = orjson.loads((GOLDEN / "requests" / "claude_code.json").read_bytes())
    given_body = vector["messages"]
    before = copy.deepcopy(given_body)
    out = to_chat_request(given_body)
    for message in out["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            part["text"] = "changed"
        for call in message.get("tool_calls", []):
            call["function"]["name"] = "changed"
    assert given_body == before


@pytest.mark.parametrize("case", refusals())
def test_refusal_names_the_field(case: dict[str, Any]) -> None:
    error = refused(case["messages"])
    assert (error.param, error.code) == (case["param"], case["code"])

# ===================================================================== rules


@pytest.mark.parametrize("budget,effort", [
    (1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high"), (31999, "high"),
])
def test_thinking_budget_to_effort(budget: int, effort: str) -> None:
    assert effort_for_budget(budget) == effort
    thinking = {"type": "enabled", "budget_tokens": budget}
    assert to_chat_request(body(thinking=thinking))["reasoning_effort"] == effort


@pytest.mark.parametrize("thinking", [{"type": "disabled"}, {"type": "adaptive"}, {"type": "between_tools"},
                                      {"type": "adaptive", "display": "omitted"}])
def test_thinking_without_a_budget_sends_no_effort(thinking: dict[str, Any]) -> None:
    assert "reasoning_effort" not in to_chat_request(body(thinking=thinking))


def test_output_config_effort_wins_over_the_budget() -> None:
    out = to_chat_request(body(thinking={"type": "enabled", "budget_tokens": 30000},
                               output_config={"effort": "low"}))
    assert out["reasoning_effort"] == "low"


@pytest.mark.parametrize("field", sorted(IGNORED_FIELDS))
def test_ignored_fields_are_accepted_and_not_sent(field: str) -> None:
    out = to_chat_request(body(**{field: {"anything": 1}}))
    assert out == to_chat_request(body())


def test_an_unknown_field_is_named() -> None:
    error = refused(body(betas=["x"]))
    assert error.param == "betas" and "betas" in error.message


def test_max_tokens_as_a_whole_float() -> None:
    assert to_chat_request(body(max_tokens=1024.0))["max_completion_tokens"] == 1024


def test_the_older_output_format_field() -> None:
    schema = {"type": "object", "properties": {}}
    out = to_chat_request(body(output_format={"type": "json_schema", "schema": schema}))
    assert out["response_format"] == {"type": "json_schema",
                                      "json_schema": {"name": "output", "schema": schema, "strict": True}}


def test_a_system_role_message_stays_a_system_message() -> None:
    messages = [{"role": "user", "content": "Hi"},
                {"role": "system", "content": [{"type": "text", "text": "Now be brief."}]}]
    assert to_chat_request(body(messages=messages))["messages"][1] == {
        "role": "system", "content": [{"type": "text", "text": "Now be brief."}]}


@pytest.mark.parametrize("system", ["", []])
def test_an_empty_system_sends_no_system_message(system: Any) -> None:
    assert to_chat_request(body(system=system))["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("kind", ["auto", "none"])
def test_tool_choice_without_tools_is_left_out(kind: str) -> None:
    out = to_chat_request(body(tool_choice={"type": kind, "disable_parallel_tool_use": True}))
    assert "tool_choice" not in out and "parallel_tool_calls" not in out


def test_tool_options() -> None:
    tool = {"name": "f", "input_schema": {"type": "object"}, "strict": True, "defer_loading": True,
            "input_examples": [{"a": 1}], "eager_input_streaming": True, "type": "custom",
            "allowed_callers": ["direct", "code_execution_20250825"]}
    assert to_chat_request(body(tools=[tool]))["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}]


def test_tool_choice_none_keeps_parallel_calls_unset() -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    out = to_chat_request(body(tools=tools, tool_choice={"type": "none", "disable_parallel_tool_use": True}))
    assert out["tool_choice"] == "none" and "parallel_tool_calls" not in out


def test_a_document_marker_goes_on_its_last_part() -> None:
    marker = {"type": "ephemeral"}
    document = {"type": "document", "cache_control": marker, "source": {"type": "content", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}
    parts = to_chat_request(body(messages=[{"role": "user", "content": [document]}]))["messages"][0]["content"]
    assert parts == [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": marker}]


def test_a_pdf_without_title_is_named_by_default() -> None:
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    part = to_chat_request(body(messages=[{"role": "user", "content": [document]}]))["messages"][0]["content"][0]
    assert part["file"]["filename"] == DEFAULT_PDF_NAME


def test_an_error_result_of_only_images_says_error() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
    messages = [{"role": "user", "content": "Go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                              "content": [image]}]}]
    out = to_chat_request(body(messages=messages))["messages"]
    assert out[2] == {"role": "tool", "tool_call_id": "t1", "content": "Error: "}
    assert out[3] == {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}


def test_automatic_caching_keeps_a_marker_already_there() -> None:
    own = {"type": "ephemeral", "ttl": "1h"}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": own}]}]
    out = to_chat_request(body(messages=messages, cache_control={"type": "ephemeral"}))
    assert out["messages"][0]["content"][0]["cache_control"] == own


def test_automatic_caching_skips_a_last_message_without_content() -> None:
    messages = [{"role": "user", "content": "Go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}]
    out = to_chat_request(body(messages=messages, cache_control={"type": "ephemeral"}))
    assert out["messages"][0]["content"] == [{"type": "text", "text": "Go", "cache_control": {"type": "ephemeral"}}]
    assert out["messages"][1]["content"] is None

# ============================================================ near-valid bodies


def places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value nested in ``doc``."""
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    found = []
    for key, value in children:
        found.append(path + (key,))
        found.extend(places(value, path + (key,)))
    return found


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
vectors = st.sampled_from([param.values[0]["messages"] for param in VECTORS])


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A golden Messages body with one to three nested values replaced by any JSON value, or deleted."""
    doc = copy.deepcopy(draw(vectors))
    for _ in range(draw(st.integers(1, 3))):
        spots = places(doc)
        if not spots:
            break
        path = draw(st.sampled_from(spots))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid())
def test_a_near_valid_body_translates_or_gets_a_400_naming_a_field(doc: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    try:
        out = to_chat_request(doc)
    except GatewayError as exc:
        assert exc.status == 400 and exc.param and exc.code in ("invalid_request", "unsupported_parameter")
    else:
        orjson.dumps(out)
    assert doc == before

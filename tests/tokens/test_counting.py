"""How many tokens a Chat Completions prompt holds (``proxy/tokens/counting.py``).

* OpenAI models are counted as OpenAI's API counts them (its cookbook's worked example);
* names, images, tools and JSON schemas add what the module documents;
* other models are estimated, and say so.
"""

from __future__ import annotations

import math

import orjson
import pytest

from proxy.tokens.counting import (
    ESTIMATE,
    REPLY_PRIMING,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    counter_for,
    message_tokens,
    prompt_tokens,
)
from proxy.tokens.estimate import IMAGE_TOKENS, TOOL_USE_PROMPT_TOKENS

# OpenAI cookbook, "How to count tokens with tiktoken": the messages it sent to the API
COOKBOOK = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates "
                                  "corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant",
     "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user",
     "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
                "increased leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the "
                                "client deliverable."},
]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.mark.parametrize("model, api_prompt_tokens", [
    ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-3.5-turbo-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124),
])
def test_openai_models_count_as_the_api_reported(model: str, api_prompt_tokens: int) -> None:
    counted = prompt_tokens({"model": model, "messages": COOKBOOK}, counter_for(model))
    assert counted.total == api_prompt_tokens
    assert counted.method != ESTIMATE


def test_the_total_is_the_messages_plus_the_fixed_part() -> None:
    counter = counter_for("gpt-4o")
    counted = prompt_tokens({"messages": COOKBOOK, "tools": TOOLS}, counter)
    assert counted.messages == tuple(message_tokens(m, counter) for m in COOKBOOK)
    assert counted.total == counted.fixed + sum(counted.messages)
    assert counted.fixed == REPLY_PRIMING + counter.text(
        '{"type":"function","function":{"name":"get_weather","description":"The weather in a city",'
        '"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}'
        .join("[]"))


def test_a_message_is_its_framing_role_and_content() -> None:
    counter = counter_for("gpt-4o")
    message = {"role": "user", "content": "What is the capital of France?"}
    assert message_tokens(message, counter) == (TOKENS_PER_MESSAGE + counter.text("user")
                                                + counter.text("What is the capital of France?"))


def test_a_name_adds_its_own_tokens_and_one_more() -> None:
    counter = counter_for("gpt-4")
    plain = {"role": "user", "content": "hi"}
    named = {**plain, "name": "example_user"}
    assert message_tokens(named, counter) - message_tokens(plain, counter) == (
        TOKENS_PER_NAME + counter.text("example_user"))


def test_text_parts_count_as_the_same_text_in_a_string() -> None:
    counter = counter_for("gpt-4o")
    parts = {"role": "user", "content": [{"type": "text", "text": "Describe "},
                                         {"type": "text", "text": "this picture."}]}
    assert message_tokens(parts, counter) == (TOKENS_PER_MESSAGE + counter.text("user")
                                              + counter.text("Describe ") + counter.text("this picture."))


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "data:image/png;base64," + "A" * 50_000])
def test_an_image_counts_its_fixed_estimate_however_long_its_url(url: str) -> None:
    counter = counter_for("gpt-4o")
    with_image = {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                              {"type": "image_url", "image_url": {"url": url}}]}
    without = {"role": "user", "content": [{"type": "text", "text": "What is this?"}]}
    assert message_tokens(with_image, counter) - message_tokens(without, counter) == IMAGE_TOKENS


def test_tool_calls_and_results_are_counted() -> None:
    counter = counter_for("gpt-4o")
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"}
    assert message_tokens(call, counter) > TOKENS_PER_MESSAGE + counter.text("assistant") + counter.text("Paris")
    assert message_tokens(result, counter) >= TOKENS_PER_MESSAGE + counter.text("18 degrees and sunny")


def test_a_json_schema_response_format_is_part_of_the_prompt() -> None:
    counter = counter_for("gpt-4o")
    body = {"messages": [{"role": "user", "content": "Give me a city."}]}
    schema = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
        "type": "object", "properties": {"name": {"type": "string"}, "population": {"type": "integer"}}}}}
    assert prompt_tokens({**body, "response_format": schema}, counter).fixed > prompt_tokens(body, counter).fixed
    plain_json = prompt_tokens({**body, "response_format": {"type": "json_object"}}, counter)
    assert plain_json.fixed == REPLY_PRIMING


def test_other_families_are_estimated_at_three_bytes_a_token() -> None:
    counter = counter_for("claude-3-5-sonnet-20241022")
    assert not counter.exact and counter.method == ESTIMATE
    text = "Summarise the attached quarterly report in three bullet points, please."
    assert counter.text(text) == math.ceil(len(text.encode()) / 3)


def test_the_estimate_adds_the_tool_use_prompt() -> None:
    counter = counter_for("claude-3-haiku")
    body = {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    added = prompt_tokens({**body, "tools": TOOLS}, counter).fixed - prompt_tokens(body, counter).fixed
    assert added == TOOL_USE_PROMPT_TOKENS + counter.text(orjson.dumps(TOOLS).decode())
    exact = counter_for("gpt-4o")  # OpenAI's own rendering is in its count: no extra prompt
    assert (prompt_tokens({**body, "tools": TOOLS}, exact).fixed - prompt_tokens(body, exact).fixed
            == exact.text(orjson.dumps(TOOLS).decode()))


def test_the_estimate_leans_high_against_an_exact_count_of_english() -> None:
    exact, estimate = counter_for("gpt-4"), counter_for("claude-3-opus")
    exact_total = prompt_tokens({"messages": COOKBOOK}, exact).total
    assert prompt_tokens({"messages": COOKBOOK}, estimate).total > exact_total


def test_odd_content_is_counted_not_raised_on() -> None:
    counter = counter_for("gpt-4o")
    for message in ({"role": "user", "content": "\ud800 lone surrogate"}, {"role": "user", "content": 42},
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA"}}]},
                    "not a message", {"role": None, "content": [None, 3]}):
        assert message_tokens(message, counter) >= TOKENS_PER_MESSAGE


def test_a_counter_is_shared_per_encoding() -> None:
    assert counter_for("gpt-4o") is counter_for("gpt-4.1-mini")
    assert counter_for("claude-3-opus") is counter_for("llama-3")

"""Anthropic prompt-cache breakpoints (``proxy/optimise/prompt_cache.py``).

Checked on bodies as the gateway's translation produces them: the marks land
on the last tool, the last system block and the end of the conversation
before the final user message (and where the previous request put that),
only on prefixes long enough to cache, never more than four, never on a
caller's own, and the input is never changed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import ModelConfig
from proxy.formats.anthropic.request import to_anthropic_request
from proxy.optimise.prompt_cache import (
    DEFAULT_MIN_TOKENS,
    EPHEMERAL,
    MAX_BREAKPOINTS,
    has_cache_control,
    min_cacheable_tokens,
    place_breakpoints,
)

SONNET = ModelConfig(name="claude", provider="anthropic", upstream_model="claude-3-5-sonnet-20241022")
LONG = "The quarterly report covers revenue, costs and hiring across all regions. " * 60  # ~1,500 tokens
TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": LONG if i == 1 else "short",
                                           "parameters": {"type": "object"}}} for i in range(2)]


def anthropic_body(messages: list[dict[str, Any]], tools: bool = False, model: ModelConfig = SONNET) -> dict:
    chat = {"model": "claude", "messages": messages, **({"tools": TOOLS} if tools else {})}
    return to_anthropic_request(chat, model)


def marks(body: dict[str, Any]) -> list[str]:
    """Where the body carries cache_control: ``tools[i]``, ``system[i]``, ``messages[i][j]``."""
    found = [f"tools[{i}]" for i, t in enumerate(body.get("tools", [])) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        found += [f"system[{i}]" for i, b in enumerate(system) if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        if isinstance(message["content"], list):
            found += [f"messages[{i}][{j}]" for j, b in enumerate(message["content"]) if "cache_control" in b]
    return found


CHAT = [
    {"role": "system", "content": LONG},
    {"role": "user", "content": "First question: " + LONG},
    {"role": "assistant", "content": "First answer."},
    {"role": "user", "content": "Second question?"},
    {"role": "assistant", "content": "Second answer."},
    {"role": "user", "content": "Third question?"},
]


def test_tools_system_and_the_conversation_so_far_are_marked() -> None:
    body = anthropic_body(CHAT, tools=True)
    result = place_breakpoints(body)
    assert result.placed == 4
    assert marks(result.body) == ["tools[1]", "system[0]", "messages[1][0]", "messages[3][0]"]
    assert result.body["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    assert result.body["messages"][3]["content"] == [
        {"type": "text", "text": "Second answer.", "cache_control": EPHEMERAL}]


def test_the_final_user_message_is_never_marked() -> None:
    result = place_breakpoints(anthropic_body(CHAT, tools=True))
    assert result.body["messages"][-1] == {"role": "user", "content": "Third question?"}


def test_the_previous_requests_mark_is_marked_again() -> None:
    earlier = place_breakpoints(anthropic_body(CHAT[:4]))  # the request before the last turn
    later = place_breakpoints(anthropic_body(CHAT))
    assert "messages[1][0]" in marks(earlier.body) and "messages[1][0]" in marks(later.body)
    assert earlier.body["messages"][1] == later.body["messages"][1]  # the same prefix, byte for byte


def test_short_prefixes_are_not_marked() -> None:
    short = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How are you?"}]
    body = anthropic_body(short, tools=False)
    result = place_breakpoints(body)
    assert result.placed == 0 and result.body is body


def test_a_prefix_becomes_cacheable_where_it_reaches_the_minimum() -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Read this: " + LONG},
            {"role": "assistant", "content": "Done."}, {"role": "user", "content": "Summarise it."}]
    result = place_breakpoints(anthropic_body(chat))
    assert marks(result.body) == ["messages[1][0]"]  # the system prompt alone is too short


def test_haiku_needs_a_longer_prefix_than_sonnet() -> None:
    haiku = ModelConfig(name="claude", provider="anthropic", upstream_model="claude-3-haiku-20240307")
    chat = [{"role": "system", "content": LONG}, {"role": "user", "content": "Question?"}]
    assert min_cacheable_tokens("claude-3-haiku-20240307") == 2048
    assert min_cacheable_tokens("claude-3-5-sonnet-20241022") == DEFAULT_MIN_TOKENS == 1024
    assert place_breakpoints(anthropic_body(chat)).placed == 1
    assert place_breakpoints(anthropic_body(chat, model=haiku)).placed == 0


@pytest.mark.parametrize("model, tokens", [
    ("claude-opus-4-5-20251101", 4096), ("claude-haiku-4-5", 4096), ("claude-3-5-haiku-latest", 2048),
    ("anthropic/claude-3.5-haiku", 2048), ("claude-sonnet-4-20250514", 1024), ("claude-3-opus-20240229", 1024),
    (None, 1024),
])
def test_each_model_has_its_documented_minimum(model: Any, tokens: int) -> None:
    assert min_cacheable_tokens(model) == tokens


OWN = {"type": "ephemeral"}


@pytest.mark.parametrize("where", ["top", "tool", "system", "message", "tool_result"])
def test_a_body_with_its_own_cache_control_gets_none(where: str) -> None:
    body = anthropic_body(CHAT, tools=True)
    if where == "top":
        body["cache_control"] = OWN
    elif where == "tool":
        body["tools"][0]["cache_control"] = OWN
    elif where == "system":
        body["system"] = [{"type": "text", "text": body["system"], "cache_control": OWN}]
    elif where == "message":
        body["messages"][0]["content"] = [{"type": "text", "text": "Q", "cache_control": OWN}]
    else:
        body["messages"][0]["content"] = [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "42", "cache_control": OWN}]}]
    assert has_cache_control(body)
    before = copy.deepcopy(body)
    result = place_breakpoints(body)
    assert result.placed == 0 and result.body == before


def test_thinking_and_empty_blocks_are_passed_over() -> None:
    body = anthropic_body(CHAT[:3] + [{"role": "user", "content": "Next?"}])
    body["messages"][1]["content"] = [{"type": "text", "text": "Visible answer."},
                                      {"type": "thinking", "thinking": "...", "signature": "s"},
                                      {"type": "text", "text": ""}]
    result = place_breakpoints(body)
    assert marks(result.body) == ["system[0]", "messages[1][0]"]


def test_a_tool_loop_marks_the_last_tool_use() -> None:
    chat = [{"role": "system", "content": LONG}, {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "tool_0", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"}]
    result = place_breakpoints(anthropic_body(chat, tools=True))
    assert result.body["messages"][1]["content"][-1]["type"] == "tool_use"
    assert "messages[1][0]" in marks(result.body)


def test_the_input_is_not_changed() -> None:
    body = anthropic_body(CHAT, tools=True)
    before = copy.deepcopy(body)
    place_breakpoints(body)
    assert body == before


# ------------------------------------------------------------------ properties

TEXT = st.sampled_from(["", "short", LONG, LONG[:2000]])
CONTENT = st.one_of(TEXT, st.lists(st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.just({"type": "thinking", "thinking": "hm", "signature": "s"}),
    st.just({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}})), max_size=3))
MESSAGES = st.lists(st.builds(lambda role, content: {"role": role, "content": content},
                              st.sampled_from(["user", "assistant"]), CONTENT), max_size=10)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _as_marked(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``before`` with strings written as one text block wherever ``after`` has blocks there."""
    def blocks(old: Any, new: Any) -> Any:
        return [{"type": "text", "text": old}] if isinstance(old, str) and isinstance(new, list) else old

    out = {**before, "messages": [{**m, "content": blocks(m["content"], n["content"])}
                                  for m, n in zip(before["messages"], after["messages"])]}
    if "system" in before:
        out["system"] = blocks(before["system"], after.get("system"))
    return out


@settings(max_examples=300, deadline=None, database=None)
@given(messages=MESSAGES, system=st.one_of(st.none(), TEXT), tools=st.booleans(),
       floor=st.sampled_from([0, 1024, 2048]))
def test_marks_are_few_well_placed_and_change_nothing_else(messages: list, system: Any, tools: bool,
                                                            floor: int) -> None:
    body: dict[str, Any] = {"model": "claude-3-5-sonnet", "max_tokens": 10, "messages": messages}
    if system is not None:
        body["system"] = system
    if tools:
        body["tools"] = [{"name": "t", "description": LONG, "input_schema": {"type": "object"}}]
    before = copy.deepcopy(body)
    result = place_breakpoints(body, floor)
    assert body == before
    found = marks(result.body)
    assert result.placed == len(found) <= MAX_BREAKPOINTS
    assert _strip(result.body) == _strip(_as_marked(before, result.body))
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    for mark in found:
        if mark.startswith("messages"):
            index = int(mark.split("[")[1].rstrip("]"))
            assert users and index < users[-1]  # before the final user message
            block = result.body["messages"][index]["content"][int(mark.split("[")[2].rstrip("]"))]
            assert block["type"] != "thinking" and (block["type"] != "text" or block["text"])

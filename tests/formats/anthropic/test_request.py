"""Chat Completions requests as Anthropic Messages requests (the outbound request translation).

The adapter-level checks live in ``tests/providers/test_anthropic.py``; here:

* the golden request vectors that hold ``outbound``: each Chat body gives
  exactly the vector's Messages body (the inbound translation read backwards);
* ``cache_control`` markers on Chat content parts and tools reach Anthropic
  exactly as set, and a malformed marker is a 400 naming it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from proxy.config import ModelConfig
from proxy.errors import GatewayError
from proxy.formats.anthropic.request import to_anthropic_request
from tests.formats.anthropic.golden import documents

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def model(name: str = "claude-sonnet-4-5") -> ModelConfig:
    return ModelConfig(name="claude", provider="anthropic", upstream_model=name)


@pytest.mark.parametrize("vector", documents("requests", "outbound"))
def test_request_vector(vector: dict[str, Any]) -> None:
    chat = vector["chat"]
    before = copy.deepcopy(chat)
    out = to_anthropic_request(chat, model(vector["messages"]["model"]), stream=bool(chat.get("stream")))
    assert out == vector["messages"]
    assert chat == before, "the caller's body must not be modified"


def translate(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return to_anthropic_request({"messages": messages, **fields}, model())


def test_system_without_markers_stays_one_string() -> None:
    out = translate([{"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                     {"role": "developer", "content": "c"}, {"role": "user", "content": "hi"}])
    assert out["system"] == "a\n\nb\n\nc"


def test_a_marked_system_part_makes_system_a_list_of_blocks() -> None:
    out = translate([
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": ""},
                                          {"type": "text", "text": "Long rules.", "cache_control": HOUR}]},
        {"role": "user", "content": "hi"}])
    assert out["system"] == [{"type": "text", "text": "Be brief."},
                             {"type": "text", "text": "Long rules.", "cache_control": HOUR}]


def test_markers_on_parts_of_every_role_are_kept() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/a.png"}, "cache_control": EPHEMERAL}
    out = translate([
        {"role": "user", "content": [{"type": "text", "text": "Look", "cache_control": HOUR}, image]},
        {"role": "assistant", "content": [{"type": "text", "text": "Seen.", "cache_control": EPHEMERAL}],
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1",
         "content": [{"type": "text", "text": "done", "cache_control": EPHEMERAL}]},
    ])
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Look", "cache_control": HOUR},
                                     {"type": "image", "source": {"type": "url", "url": "https://x/a.png"},
                                      "cache_control": EPHEMERAL}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Seen.", "cache_control": EPHEMERAL},
                                          {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                                      "content": [{"type": "text", "text": "done"}], "cache_control": EPHEMERAL}]},
    ]


def test_markers_in_a_tool_message_go_on_its_tool_result() -> None:
    """Anthropic refuses cache_control inside tool_result.content; on the block it caches the same prefix."""
    out = translate([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [
            {"type": "text", "text": "a", "cache_control": EPHEMERAL}, {"type": "text", "text": "b", "cache_control": HOUR},
            {"type": "text", "text": "c"}]}])
    assert out["messages"][2]["content"] == [{
        "type": "tool_result", "tool_use_id": "call_1", "cache_control": HOUR,
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "text", "text": "c"}]}]


def test_a_marked_tool_keeps_its_marker() -> None:
    tools = [{"type": "function", "function": {"name": "f"}, "cache_control": EPHEMERAL}]
    out = translate([{"role": "user", "content": "hi"}], tools=tools)
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}},
                             "cache_control": EPHEMERAL}]


@pytest.mark.parametrize("messages,tools,param", [
    ([{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "ephemeral"}]}], None,
     "messages[0].content[0].cache_control"),
    ([{"role": "system", "content": [{"type": "text", "text": "x", "cache_control": ["1h"]}]},
      {"role": "user", "content": "hi"}], None, "messages[0].content[0].cache_control"),
    ([{"role": "user", "content": "hi"}], [{"type": "function", "function": {"name": "f"}, "cache_control": 1}],
     "tools[0].cache_control"),
])
def test_a_malformed_marker_is_a_400_naming_it(messages: list[Any], tools: Any, param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        translate(messages, **({"tools": tools} if tools else {}))
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, "invalid_request")

"""A request's prompt size: bounded from its bytes first, counted only when a window is at risk, once per counter."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.optimise.prompt_size import PromptSize, image_parts
from proxy.tokens.counting import counter_for, prompt_tokens
from proxy.tokens.estimate import IMAGE_TOKENS


def size_of(body: dict[str, Any]) -> PromptSize:
    return PromptSize(body, len(orjson.dumps(body)))


def image(url: str = "https://x.test/a.png") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def test_a_body_far_shorter_than_the_window_is_not_at_risk() -> None:
    body = {"messages": [{"role": "user", "content": "hello " * 100}]}
    assert not size_of(body).at_risk(128_000, 4096)
    assert size_of(body).at_risk(600, 0)  # its bytes alone could exceed a tiny window


def test_images_count_only_as_many_as_there_are() -> None:
    """A long body could hold many images; the parsed body says how many it has."""
    text = {"role": "user", "content": [{"type": "text", "text": "x" * 20_000}]}
    with_two = {"messages": [text, {"role": "user", "content": [image(), image()]}]}
    size = size_of(with_two)
    assert size.images() == 2
    room = size.body_bytes + 512 + 2 * IMAGE_TOKENS
    assert not size.at_risk(room, 0) and size.at_risk(room - 1, 0)


def test_the_prompt_is_counted_once_per_counter() -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there!"}]}
    size = size_of(body)
    exact, estimate = counter_for("gpt-4o"), counter_for("claude-3-haiku-20240307")
    first = size.counted(exact)
    assert first == prompt_tokens(body, exact) and size.counted(exact) is first
    assert size.counted(estimate).method == "estimate"
    body["messages"].append({"role": "user", "content": "more"})
    assert size.counted(exact) is first  # known counts stand until forgotten
    size.forget_counts()
    assert size.counted(exact).total > first.total


def test_image_parts_are_found_in_list_contents_only() -> None:
    messages = [{"role": "user", "content": [image(), {"type": "text", "text": "image_url"}]},
                {"role": "user", "content": "image_url"}, "not a message", {"role": "user", "content": [image()]}]
    assert image_parts(messages) == 2 and image_parts(None) == 0

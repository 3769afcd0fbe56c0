"""The cheap upper bound that spares short prompts any tokenising (``proxy/tokens/bound.py``).

The property that makes it safe: for any request, with any counter, the
counted prompt never exceeds the bound computed from the body's length and
its image parts; so when :func:`could_exceed` says no, the request fits.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.tokens.bound import (
    MIN_IMAGE_PART_BYTES,
    could_exceed,
    image_parts_in,
    prompt_upper_bound,
    rough_prompt_tokens,
)
from proxy.tokens.counting import counter_for, prompt_tokens
from proxy.tokens.estimate import IMAGE_TOKENS

PURE = settings(max_examples=200, deadline=None, database=None)
MODELS = ("gpt-4o", "gpt-4", "claude-3-opus")
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
SHORT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=False, allow_infinity=False, width=32), SHORT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                    st.dictionaries(SHORT, inner, max_size=3)), max_leaves=8)
PART = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": u}}, SHORT),
    st.builds(lambda d: {"type": "input_audio", "input_audio": {"data": d}}, SHORT),
)
TOOL_CALL = st.builds(lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}},
                      SHORT, SHORT, TEXT)
MESSAGE = st.one_of(
    st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "developer", "user"]),
              st.one_of(TEXT, st.lists(PART, max_size=4))),
    st.builds(lambda c, n: {"role": "user", "content": c, "name": n}, TEXT, SHORT),
    st.builds(lambda c, calls: {"role": "assistant", "content": c, "tool_calls": calls},
              st.one_of(st.none(), TEXT), st.lists(TOOL_CALL, min_size=1, max_size=3)),
    st.builds(lambda i, c: {"role": "tool", "tool_call_id": i, "content": c}, SHORT, TEXT),
)
TOOL = st.builds(lambda n, p: {"type": "function", "function": {"name": n, "parameters": p}}, SHORT, JSON)
BODY = st.builds(
    lambda messages, tools: {"model": "m", "messages": messages, **({"tools": tools} if tools else {})},
    st.lists(MESSAGE, min_size=1, max_size=8), st.lists(TOOL, max_size=3))


@pytest.mark.parametrize("model", MODELS)
@PURE
@given(body=BODY)
def test_no_request_counts_more_than_its_bound(model: str, body: dict) -> None:
    raw = orjson.dumps(body)
    counted = prompt_tokens(body, counter_for(model)).total
    assert counted <= prompt_upper_bound(len(raw), image_parts_in(raw))


@pytest.mark.parametrize("model", MODELS)
@PURE
@given(body=BODY, window=st.integers(1, 20_000), reserved=st.integers(0, 4096))
def test_a_request_said_not_to_exceed_fits(model: str, body: dict, window: int, reserved: int) -> None:
    raw = orjson.dumps(body)
    if not could_exceed(len(raw), window, reserved, raw):
        assert prompt_tokens(body, counter_for(model)).total + reserved <= window


def test_a_short_prompt_never_needs_counting() -> None:
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello there!"}]})
    assert not could_exceed(len(body), 8192, 4096, body)
    assert not could_exceed(len(body), 128_000, 4096)  # too short to hold images that matter


def test_a_prompt_near_the_window_must_be_counted() -> None:
    body = orjson.dumps({"messages": [{"role": "user", "content": "word " * 2000}]})
    assert could_exceed(len(body), 8192, 0, body)
    assert not could_exceed(len(body), 128_000, 4096, body)


def test_images_count_only_where_they_are_parts() -> None:
    one = orjson.dumps({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]})
    quoted = orjson.dumps({"messages": [{"role": "user", "content": 'say "image_url" twice: "image_url"'}]})
    assert image_parts_in(one) == 2  # its type and its key: an upper bound
    assert image_parts_in(quoted) == 0


def test_images_are_looked_for_only_when_they_could_matter() -> None:
    body_bytes = 3000  # could hold 150 image parts: 240,000 tokens
    no_images = b"x" * body_bytes
    assert not could_exceed(body_bytes, 128_000, 0, no_images)
    assert could_exceed(body_bytes, 128_000, 0)  # without the body, as many images as could fit
    small = 100
    assert prompt_upper_bound(small, small // MIN_IMAGE_PART_BYTES) < 128_000
    assert not could_exceed(small, 128_000)


def test_the_bound_grows_with_images() -> None:
    assert prompt_upper_bound(1000, 2) - prompt_upper_bound(1000) == 2 * IMAGE_TOKENS


def test_the_rough_size_is_a_quarter_of_the_bytes() -> None:
    assert rough_prompt_tokens(4000) == 1000

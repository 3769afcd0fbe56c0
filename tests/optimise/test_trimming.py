"""Dropping a conversation's oldest turns to fit a budget (``proxy/optimise/trimming.py``).

Worked examples, then properties over arbitrary conversations: what is kept
is the system prompt plus an unbroken run of the newest messages that starts
a turn; no tool call is parted from its results; the last user message is
always kept; the run is the longest that fits; and the counts add up.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.optimise.trimming import trim_oldest
from proxy.tokens.counting import counter_for, message_tokens

PURE = settings(max_examples=250, deadline=None, database=None)


def size(message: dict[str, Any]) -> int:
    """A message's tokens in these tests: its ``n``."""
    return message["n"]


def msg(role: str, n: int = 10, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": f"{role} {n}", "n": n, **extra}


def call(ids: list[str], n: int = 10) -> dict[str, Any]:
    return msg("assistant", n, tool_calls=[{"id": i, "type": "function",
                                            "function": {"name": "f", "arguments": "{}"}} for i in ids])


def result(call_id: str, n: int = 10) -> dict[str, Any]:
    return msg("tool", n, tool_call_id=call_id)


CONVERSATION = [msg("system", 50), msg("user"), msg("assistant"), msg("user"), call(["a", "b"]),
                result("a"), result("b"), msg("assistant"), msg("user")]  # 50 + 8 * 10 tokens


def test_a_conversation_that_fits_is_left_alone() -> None:
    trimmed = trim_oldest(CONVERSATION, 130, size)
    assert trimmed is not None
    assert trimmed.messages == CONVERSATION and (trimmed.dropped_count, trimmed.dropped_tokens) == (0, 0)


def test_the_oldest_turn_goes_first_and_the_system_prompt_stays() -> None:
    trimmed = trim_oldest(CONVERSATION, 129, size)
    assert trimmed is not None
    assert trimmed.messages == [CONVERSATION[0], *CONVERSATION[3:]]
    assert (trimmed.dropped_count, trimmed.dropped_tokens) == (2, 20)


def test_a_tool_call_goes_with_its_results() -> None:
    trimmed = trim_oldest(CONVERSATION, 109, size)  # the second turn (user, call, 2 results, reply) must go
    assert trimmed is not None
    assert trimmed.messages == [CONVERSATION[0], CONVERSATION[-1]]
    assert trimmed.dropped_count == 7


def test_none_when_even_the_last_question_and_the_system_prompt_do_not_fit() -> None:
    assert trim_oldest(CONVERSATION, 59, size) is None
    assert trim_oldest(CONVERSATION, 60, size) is not None


def test_without_keep_system_the_system_prompt_is_a_turn_like_any_other() -> None:
    trimmed = trim_oldest(CONVERSATION, 59, size, keep_system=False)
    assert trimmed is not None
    assert trimmed.messages == [CONVERSATION[-1]]
    assert trimmed.dropped_tokens == 50 + 70


def test_a_system_message_in_the_middle_stays_where_it_was() -> None:
    messages = [msg("user"), msg("assistant"), msg("developer", 5), msg("user"), msg("assistant")]
    trimmed = trim_oldest(messages, 25, size)
    assert trimmed is not None
    assert trimmed.messages == [messages[2], messages[3], messages[4]]


def test_what_follows_the_last_user_message_is_kept_with_it() -> None:
    messages = [msg("user"), msg("assistant"), msg("user"), call(["x"]), result("x")]
    assert trim_oldest(messages, 29, size) is None
    trimmed = trim_oldest(messages, 30, size)
    assert trimmed is not None and trimmed.messages == messages[2:]


def test_real_token_counts_work_as_the_count() -> None:
    counter = counter_for("gpt-4o")
    messages = [{"role": "system", "content": "Be brief."}] + [
        {"role": role, "content": f"message number {i} " * 20}
        for i, role in enumerate(["user", "assistant"] * 10)]
    count = lambda m: message_tokens(m, counter)  # noqa: E731
    budget = sum(map(count, messages)) // 2
    trimmed = trim_oldest(messages, budget, count)
    assert trimmed is not None
    assert sum(map(count, trimmed.messages)) <= budget
    assert trimmed.messages[0] == messages[0] and trimmed.messages[1]["role"] == "user"
    assert trimmed.dropped_tokens == sum(map(count, messages)) - sum(map(count, trimmed.messages))


def test_the_input_is_not_changed() -> None:
    before = [dict(m) for m in CONVERSATION]
    trim_oldest(CONVERSATION, 70, size)
    assert CONVERSATION == before


# ------------------------------------------------------------------ properties


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Conversations in any order: system prompts anywhere, tool calls with some or all results."""
    messages: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["system", "developer", "user", "assistant", "tools", "orphan"]))
        n = draw(st.integers(0, 40))
        if kind == "tools":
            ids = [f"t{turn}_{k}" for k in range(draw(st.integers(1, 3)))]
            messages.append(call(ids, n))
            messages.extend(result(i, draw(st.integers(0, 40))) for i in ids[:draw(st.integers(0, len(ids)))])
        elif kind == "orphan":
            messages.append(result(f"none{turn}", n))
        else:
            messages.append(msg(kind, n))
    return messages


def _pinned(message: dict[str, Any], keep_system: bool) -> bool:
    return keep_system and message["role"] in ("system", "developer")


@PURE
@given(messages=conversations(), budget=st.integers(0, 400), keep_system=st.booleans())
def test_what_is_kept_is_the_system_prompt_and_a_suffix(messages: list, budget: int, keep_system: bool) -> None:
    trimmed = trim_oldest(messages, budget, size, keep_system)
    if trimmed is None:
        return
    kept_ids = {id(m) for m in trimmed.messages}
    assert [m for m in messages if id(m) in kept_ids] == trimmed.messages  # original order
    rest = [m for m in messages if not _pinned(m, keep_system)]
    kept_rest = [m for m in trimmed.messages if not _pinned(m, keep_system)]
    assert kept_rest == rest[len(rest) - len(kept_rest):]  # an unbroken run of the newest
    assert all(id(m) in kept_ids for m in messages if _pinned(m, keep_system))
    if trimmed.dropped_count:
        assert kept_rest == [] or kept_rest[0]["role"] == "user"  # whole turns went


@PURE
@given(messages=conversations(), budget=st.integers(0, 400), keep_system=st.booleans())
def test_no_tool_call_is_split_from_its_results(messages: list, budget: int, keep_system: bool) -> None:
    trimmed = trim_oldest(messages, budget, size, keep_system)
    if trimmed is None:
        return
    kept = {id(m) for m in trimmed.messages}
    for i, message in enumerate(messages):
        if message.get("tool_calls"):
            results = []
            for after in messages[i + 1:]:
                if after["role"] == "tool":
                    results.append(after)
                elif not _pinned(after, keep_system):
                    break
            assert all((id(r) in kept) == (id(message) in kept) for r in results)


@PURE
@given(messages=conversations(), budget=st.integers(0, 400), keep_system=st.booleans())
def test_the_longest_run_that_fits_is_kept(messages: list, budget: int, keep_system: bool) -> None:
    trimmed = trim_oldest(messages, budget, size, keep_system)
    pinned = sum(m["n"] for m in messages if _pinned(m, keep_system))
    rest = [m for m in messages if not _pinned(m, keep_system)]
    starts = [0] + [p for p, m in enumerate(rest) if p and m["role"] == "user"]
    fitting = [p for p in starts if pinned + sum(m["n"] for m in rest[p:]) <= budget]
    if not fitting:
        assert trimmed is None
        return
    assert trimmed is not None
    run = {id(m) for m in rest[fitting[0]:]}
    assert trimmed.messages == [m for m in messages if _pinned(m, keep_system) or id(m) in run]
    users = [m for m in messages if m["role"] == "user"]
    if users:
        assert any(m is users[-1] for m in trimmed.messages)
    assert sum(map(size, trimmed.messages)) <= budget
    assert trimmed.dropped_count == len(messages) - len(trimmed.messages)
    assert trimmed.dropped_tokens == sum(map(size, messages)) - sum(map(size, trimmed.messages))

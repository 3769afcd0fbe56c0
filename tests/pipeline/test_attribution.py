"""The request's agent: X-Agent, else Claude Code's session and subagent headers."""

from __future__ import annotations

from multidict import CIMultiDict

from proxy.pipeline.attribution import MAX_AGENT, agent_for


def test_x_agent_wins() -> None:
    headers = CIMultiDict({"X-Agent": "invoice-bot", "x-claude-code-session-id": "s-1"})
    assert agent_for(headers) == "invoice-bot"


def test_claude_code_sessions_and_subagents() -> None:
    assert agent_for(CIMultiDict({"X-Claude-Code-Session-Id": "s-1"})) == "claude-code/s-1"
    both = CIMultiDict({"x-claude-code-session-id": "s-1", "x-claude-code-agent-id": "a-9",
                        "x-claude-code-parent-agent-id": "a-1"})
    assert agent_for(both) == "claude-code/s-1/a-9"


def test_no_agent_without_either() -> None:
    assert agent_for(CIMultiDict({"x-claude-code-agent-id": "a-9"})) is None
    assert agent_for(CIMultiDict()) is None


def test_values_are_bounded_and_made_printable() -> None:
    long = agent_for(CIMultiDict({"x-claude-code-session-id": "s" * 500}))
    assert long is not None and len(long) == MAX_AGENT
    odd = agent_for(CIMultiDict({"x-claude-code-session-id": "s\udcff\x07-1"}))
    assert odd == "claude-code/s\ufffd-1"

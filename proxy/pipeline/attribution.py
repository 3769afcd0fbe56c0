"""Which agent a request comes from: ``X-Agent``, else Claude Code's attribution headers.

The agent is recorded in the log line and the usage ledger (``GET /v1/usage
?group_by=agent``). A caller names it with ``X-Agent``. Claude Code sends
none, but marks every request with ``x-claude-code-session-id`` (one value
per session) and, from a subagent it spawned, ``x-claude-code-agent-id``; its
gateway protocol reference names them as the headers to attribute cost by.
Without ``X-Agent``, the agent is then ``claude-code/<session id>``, or
``claude-code/<session id>/<agent id>`` for a subagent's request, so usage
groups by session and splits out parallel subagents. Values are kept as every
kept header value is (:func:`proxy.pipeline.header_values.header_text`), at
most :data:`MAX_AGENT` characters.
"""

from __future__ import annotations

from typing import Mapping

from proxy.pipeline.header_values import header_text

AGENT_HEADER = "X-Agent"
CLAUDE_CODE_SESSION_HEADER = "x-claude-code-session-id"
CLAUDE_CODE_AGENT_HEADER = "x-claude-code-agent-id"
CLAUDE_CODE_AGENT = "claude-code"
MAX_AGENT = 200


def agent_for(headers: Mapping[str, str]) -> str | None:
    """The request's agent: ``X-Agent``, else Claude Code's session (and subagent), else ``None``."""
    agent = header_text(headers.get(AGENT_HEADER), MAX_AGENT)
    if agent is not None:
        return agent
    session = headers.get(CLAUDE_CODE_SESSION_HEADER)
    if not session:
        return None
    subagent = headers.get(CLAUDE_CODE_AGENT_HEADER)
    name = f"{CLAUDE_CODE_AGENT}/{session}/{subagent}" if subagent else f"{CLAUDE_CODE_AGENT}/{session}"
    return header_text(name, MAX_AGENT)

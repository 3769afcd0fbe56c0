"""The built-in ``mock`` provider: deterministic answers with no network at all.

For demos, tests and load tests. The reply repeats the last user message, so a
caller can see its request arrived; the same request always gets the same
answer. A request with ``tools`` gets a call of one of them (arguments valid
against its ``parameters``) unless it ends with a tool result; a
``response_format`` gets a JSON document (valid against its ``json_schema``);
``n`` gets that many choices; a plain text request takes none of that path.
``providers.<name>.mock`` sets the latency before the first byte, the number
of stream chunks, the delay between them and the embedding size.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import struct
import time
from typing import Any, AsyncIterator

import orjson

from proxy.errors import ErrorCode
from proxy.providers.base import (
    ChatStream,
    ProviderAdapter,
    UpstreamCall,
    UpstreamError,
)
from proxy.providers.mock_values import example_object, example_value


def count_tokens(text: str) -> int:
    """A stable stand-in for a tokenizer: about one token per four characters."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def message_text(message: Any) -> str:
    """The plain text of a chat message, whatever shape its content has."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


class MockAdapter(ProviderAdapter):
    """Answers chat and embeddings requests in-process."""

    type_name = "mock"
    needs_key = False
    needs_base_url = False

    def status(self) -> str:
        """The mock is always available."""
        return "available"

    def _reply(self, call: UpstreamCall) -> tuple[list[str], str, dict[str, int]]:
        """The plain text answer (one choice, no tools, no response format): the benchmark's path."""
        messages = call.body.get("messages") or []
        pieces = _split(_text(call, messages, 0), self.config.mock.chunk_count)
        limit = call.body.get("max_completion_tokens") or call.body.get("max_tokens") or call.model.default_max_tokens
        finish = "stop"
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, finish = pieces[:limit], "length"
        prompt = sum(count_tokens(message_text(m)) + 3 for m in messages)
        completion = len(pieces)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        return pieces, finish, usage

    def _answer(self, call: UpstreamCall) -> tuple[list[_Choice], dict[str, int]]:
        """The choices of an answer that needs more than text: tools, a response format or ``n`` > 1."""
        body = call.body
        messages = body.get("messages") or []
        count = body.get("n")
        count = count if isinstance(count, int) and count > 1 else 1
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or call.model.default_max_tokens
        limit = limit if isinstance(limit, int) and limit > 0 else None
        chunks = self.config.mock.chunk_count
        base_id = self._completion_id(call)
        tool = _tool_to_call(body, messages)
        answer_format = body.get("response_format")
        kind = answer_format.get("type") if isinstance(answer_format, dict) else None
        choices: list[_Choice] = []
        for index in range(count):
            seed = f"{base_id}:{index}"
            if tool is not None:
                function = tool["function"]
                arguments = orjson.dumps(example_object(function.get("parameters"), seed)).decode()
                call_id = "call_" + hashlib.sha256(f"{seed}:{function['name']}".encode()).hexdigest()[:24]
                choices.append(_Choice.of_json(arguments, chunks, limit, "tool_calls",
                                               tool_call=(call_id, function["name"])))
            elif kind == "json_schema":
                spec = answer_format.get("json_schema") if isinstance(answer_format, dict) else None
                schema = spec.get("schema") if isinstance(spec, dict) else None
                value = example_value(schema if isinstance(schema, (dict, bool)) else {"type": "object"}, seed)
                choices.append(_Choice.of_json(orjson.dumps(value).decode(), chunks, limit, "stop"))
            elif kind == "json_object":
                document = orjson.dumps({"reply": _text(call, messages, index)}).decode()
                choices.append(_Choice.of_json(document, chunks, limit, "stop"))
            else:
                pieces, finish = _split(_text(call, messages, index), chunks), "stop"
                if limit is not None and limit < len(pieces):
                    pieces, finish = pieces[:limit], "length"
                choices.append(_Choice(pieces, finish, len(pieces)))
        prompt = sum(count_tokens(message_text(m)) + 3 for m in messages)
        prompt += sum(count_tokens(orjson.dumps(m["tool_calls"]).decode()) for m in messages
                      if isinstance(m, dict) and m.get("tool_calls"))
        if body.get("tools"):
            prompt += count_tokens(orjson.dumps(body["tools"]).decode())
        if kind == "json_schema":
            prompt += count_tokens(orjson.dumps(answer_format).decode())
        completion = sum(choice.tokens for choice in choices)
        return choices, {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}

    def _completion_id(self, call: UpstreamCall) -> str:
        digest = hashlib.sha256(orjson.dumps(call.body.get("messages"), option=orjson.OPT_SORT_KEYS))
        return "chatcmpl-mock-" + digest.hexdigest()[:24]

    async def chat(self, call: UpstreamCall) -> dict[str, Any]:
        """A complete answer after the configured latency."""
        if _needs_more_than_text(call.body):
            answers, usage = self._answer(call)
            choices = [{"index": i, "message": c.message(), "finish_reason": c.finish, "logprobs": None}
                       for i, c in enumerate(answers)]
        else:
            pieces, finish, usage = self._reply(call)
            choices = [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                        "finish_reason": finish, "logprobs": None}]
        await _sleep(self.config.mock.latency)
        return {
            "id": self._completion_id(call),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model.upstream_model,
            "choices": choices,
            "usage": usage,
        }

    async def chat_stream(self, call: UpstreamCall) -> ChatStream:
        """A stream of ``chunk_count`` chunks, ``chunk_delay`` seconds apart.

        A request the mock refuses (a ``tool_choice`` naming no tool) fails
        here, before the stream opens, as an upstream's 400 would.
        """
        stream = ChatStream()
        if _needs_more_than_text(call.body):
            choices, usage = self._answer(call)
            stream.chunks = self._choice_chunks(call, stream, choices, usage)
        else:
            stream.chunks = self._chunks(call, stream)
        return stream

    def _head(self, call: UpstreamCall) -> dict[str, Any]:
        return {
            "id": self._completion_id(call),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model.upstream_model,
        }

    async def _chunks(self, call: UpstreamCall, stream: ChatStream) -> AsyncIterator[list[bytes]]:
        settings = self.config.mock
        pieces, finish, usage = self._reply(call)
        base = self._head(call)
        await _sleep(settings.latency)
        yield [_chunk(base, {"role": "assistant", "content": ""}, None)]
        for i, piece in enumerate(pieces):
            if i:
                await _sleep(settings.chunk_delay)
            yield [_chunk(base, {"content": piece}, None)]
        last = [_chunk(base, {}, finish)]
        stream.usage = usage
        if call.include_usage:
            last.append(orjson.dumps({**base, "choices": [], "usage": usage}))
        yield last

    async def _choice_chunks(self, call: UpstreamCall, stream: ChatStream, choices: list[_Choice],
                             usage: dict[str, int]) -> AsyncIterator[list[bytes]]:
        """The chunks of several choices, interleaved: one chunk per choice at each step, as OpenAI sends ``n``."""
        settings = self.config.mock
        base = self._head(call)
        await _sleep(settings.latency)
        yield [_chunk(base, c.first_delta(), None, i) for i, c in enumerate(choices)]
        for step in range(max(len(c.pieces) for c in choices)):
            if step:
                await _sleep(settings.chunk_delay)
            batch = [_chunk(base, c.piece_delta(c.pieces[step]), None, i)
                     for i, c in enumerate(choices) if step < len(c.pieces)]
            if batch:
                yield batch
        last = [_chunk(base, {}, c.finish, i) for i, c in enumerate(choices)]
        stream.usage = usage
        if call.include_usage:
            last.append(orjson.dumps({**base, "choices": [], "usage": usage}))
        yield last

    async def embeddings(self, call: UpstreamCall) -> dict[str, Any]:
        """Unit vectors derived from a hash of each input."""
        raw = call.body.get("input")
        inputs = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
        dimensions = call.body.get("dimensions") or self.config.mock.embedding_dimensions
        as_base64 = call.body.get("encoding_format") == "base64"
        await _sleep(self.config.mock.latency)
        data = []
        tokens = 0
        for index, item in enumerate(inputs or []):
            text = item if isinstance(item, str) else orjson.dumps(item).decode()
            tokens += count_tokens(text)
            vector = _vector(text, dimensions)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": call.model.upstream_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _split(text: str, count: int) -> list[str]:
    """``text`` in ``count`` pieces (fewer if the text is shorter), joined back exactly."""
    count = max(1, min(count, len(text)))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None, index: int = 0) -> bytes:
    return orjson.dumps({**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})


def _needs_more_than_text(body: dict[str, Any]) -> bool:
    """Whether the request may ask for tools, a response format or several choices.

    Three key lookups keep the plain text path fast; the other path answers
    ``n: 1``, ``tools: null`` and ``response_format: {"type": "text"}`` with
    the same text.
    """
    return "tools" in body or "response_format" in body or "n" in body


def _text(call: UpstreamCall, messages: list[Any], index: int) -> str:
    """The text reply of choice ``index``: the last user message, and the tool result it follows, if any."""
    last_user = next(
        (message_text(m) for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), ""
    )
    which = f" {index + 1}" if index else ""
    text = f"Mock reply{which} from {call.model.upstream_model}: {last_user[:200]}"
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") == "tool":
        name = _tool_name(messages, last.get("tool_call_id"))
        text += f" (tool {name} returned: {message_text(last)[:200]})" if name else \
            f" (tool returned: {message_text(last)[:200]})"
    return text


def _tool_name(messages: list[Any], call_id: Any) -> str | None:
    """The function name of the assistant's tool call ``call_id``."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            for tool_call in message.get("tool_calls") or ():
                if isinstance(tool_call, dict) and tool_call.get("id") == call_id:
                    function = tool_call.get("function")
                    name = function.get("name") if isinstance(function, dict) else None
                    return name if isinstance(name, str) else None
    return None


def _tool_to_call(body: dict[str, Any], messages: list[Any]) -> dict[str, Any] | None:
    """The function tool the answer calls, or ``None`` to answer with content.

    No call when there are no function tools, ``tool_choice`` is ``none``, or
    the conversation ends with a tool result (the model then answers it).
    Otherwise the tool ``tool_choice`` names, else the first one. A
    ``tool_choice`` naming a function that is not in ``tools`` is refused with
    a 400, as OpenAI refuses it.
    """
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"
             and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") in ("tool", "function"):
        return None
    wanted = _named_tool(choice)
    if wanted is None:
        return tools[0]
    for tool in tools:
        if tool["function"]["name"] == wanted:
            return tool
    names = ", ".join(t["function"]["name"] for t in tools)
    raise UpstreamError(400, f"Invalid value for 'tool_choice': function '{wanted}' is not among "
                        f"the tools ({names}).", code=ErrorCode.INVALID_REQUEST, param="tool_choice",
                        type="invalid_request_error", retryable=False)


def _named_tool(choice: Any) -> str | None:
    """The function name a ``tool_choice`` object names (``{"type": "function", "function": {"name"}}``)."""
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "allowed_tools":  # the first allowed function, if the list names one
        allowed = choice.get("allowed_tools")
        listed = allowed.get("tools") if isinstance(allowed, dict) else None
        return next((n for n in (_named_tool(t) for t in listed or ()) if n), None)
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else choice.get("name")
    return name if isinstance(name, str) and name else None


class _Choice:
    """One choice of an answer: content pieces, or a tool call and the pieces of its arguments."""

    __slots__ = ("pieces", "finish", "tokens", "tool_call")

    def __init__(self, pieces: list[str], finish: str, tokens: int,
                 tool_call: tuple[str, str] | None = None) -> None:
        self.pieces = pieces
        self.finish = finish
        self.tokens = tokens
        self.tool_call = tool_call  # (id, function name)

    @classmethod
    def of_json(cls, document: str, chunks: int, limit: int | None, finish: str,
                tool_call: tuple[str, str] | None = None) -> "_Choice":
        """A JSON document (content or tool arguments) counted, and cut at ``limit`` tokens, as text is."""
        tokens = count_tokens(document) + (count_tokens(tool_call[1]) if tool_call else 0)
        if limit is not None and tokens > limit:
            document, tokens, finish = document[:limit * 4], limit, "length"
        return cls(_split(document, chunks) if document else [], finish, tokens, tool_call)

    def message(self) -> dict[str, Any]:
        """The choice's ``message``, as in a complete answer."""
        if self.tool_call is None:
            return {"role": "assistant", "content": "".join(self.pieces), "refusal": None}
        call_id, name = self.tool_call
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": "".join(self.pieces)}}]}

    def first_delta(self) -> dict[str, Any]:
        """The first delta of the choice's stream: the role, and a tool call's id and name."""
        if self.tool_call is None:
            return {"role": "assistant", "content": ""}
        call_id, name = self.tool_call
        return {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}

    def piece_delta(self, piece: str) -> dict[str, Any]:
        """The delta that carries ``piece``."""
        if self.tool_call is None:
            return {"content": piece}
        return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}


def _vector(text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)

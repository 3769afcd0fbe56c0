"""The built-in ``mock`` provider: deterministic answers with no network at all.

For demos, tests and load tests. The reply repeats the last user message, so a
caller can see its request arrived; the same request always gets the same
answer. ``providers.<name>.mock`` sets the latency before the first byte, the
number of stream chunks, the delay between them and the embedding size.
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

from proxy.providers.base import ChatStream, ProviderAdapter, UpstreamCall


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
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


class MockAdapter(ProviderAdapter):
    """Answers chat and embeddings requests in-process."""

    def status(self) -> str:
        """The mock is always available."""
        return "available"

    def _reply(self, call: UpstreamCall) -> tuple[list[str], str, dict[str, int]]:
        messages = call.body.get("messages") or []
        last_user = next(
            (message_text(m) for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), ""
        )
        text = f"Mock reply from {call.model.upstream_model}: {last_user[:200]}"
        pieces = _split(text, self.config.mock.chunk_count)
        limit = call.body.get("max_completion_tokens") or call.body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, finish = pieces[:limit], "length"
        prompt = sum(count_tokens(message_text(m)) + 3 for m in messages)
        completion = len(pieces)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        return pieces, finish, usage

    def _completion_id(self, call: UpstreamCall) -> str:
        digest = hashlib.sha256(orjson.dumps(call.body.get("messages"), option=orjson.OPT_SORT_KEYS))
        return "chatcmpl-mock-" + digest.hexdigest()[:24]

    async def chat(self, call: UpstreamCall) -> dict[str, Any]:
        """A complete answer after the configured latency."""
        pieces, finish, usage = self._reply(call)
        await _sleep(self.config.mock.latency)
        return {
            "id": self._completion_id(call),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model.upstream_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces)},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }

    async def chat_stream(self, call: UpstreamCall) -> ChatStream:
        """A stream of ``chunk_count`` chunks, ``chunk_delay`` seconds apart."""
        stream = ChatStream()
        stream.chunks = self._chunks(call, stream)
        return stream

    async def _chunks(self, call: UpstreamCall, stream: ChatStream) -> AsyncIterator[list[bytes]]:
        settings = self.config.mock
        pieces, finish, usage = self._reply(call)
        base = {
            "id": self._completion_id(call),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model.upstream_model,
        }
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


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None) -> bytes:
    return orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


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

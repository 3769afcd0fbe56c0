"""Between a stream of chat chunks and one complete chat answer, both ways.

:class:`CompletionAssembler` builds the ``chat.completion`` a stream amounts
to (so a streamed answer can be cached), and :func:`replay_chunks` turns a
stored ``chat.completion`` back into the chunks of a stream (so a cached
answer can be served to a streaming caller).
"""

from __future__ import annotations

from typing import Any, Iterator

import orjson


def include_usage_requested(body: dict[str, Any]) -> bool:
    """Whether the caller asked for the final usage chunk of a stream."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class CompletionAssembler:
    """Feed it every chunk payload of a stream; ask it for the whole answer at the end.

    :meth:`add_batch` only keeps the payloads; they are parsed together, in one
    orjson call, every :data:`FOLD_EVERY` chunks and when the answer is asked
    for. Relaying a chunk thus costs a list append, and the parsing happens
    in bulk (at the end, for most answers) instead of between chunks. A
    payload that is not JSON marks the answer ``broken``: it is then never
    ``complete``, so it is never cached, and the stream itself goes on.
    """

    __slots__ = ("_head", "_choices", "_usage", "_kept", "broken")

    FOLD_EVERY = 64

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None
        self._kept: list[bytes] = []
        self.broken = False

    def add(self, payload: bytes) -> None:
        """Take one ``chat.completion.chunk`` (JSON bytes)."""
        self.add_batch([payload])

    def add_batch(self, payloads: list[bytes]) -> None:
        """Take the chunks of one batch, in order."""
        kept = self._kept
        kept += payloads
        if len(kept) >= self.FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        kept, self._kept = self._kept, []
        if not kept or self.broken:
            return
        try:
            chunks = orjson.loads(b"[" + b",".join(kept) + b"]")
        except orjson.JSONDecodeError:
            self.broken = True
            return
        for chunk in chunks:
            if not isinstance(chunk, dict):
                self.broken = True
                return
            self._take(chunk)

    @property
    def usage(self) -> dict[str, Any] | None:
        """The last ``usage`` the chunks carried, if any."""
        self._fold()
        return self._usage

    @usage.setter
    def usage(self, value: dict[str, Any] | None) -> None:
        self._fold()
        self._usage = value

    def _take(self, chunk: dict[str, Any]) -> None:
        if not self._head:
            self._head = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint", "service_tier",
                                                  "provider")
                          if k in chunk}
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        for choice in chunk.get("choices") or ():
            self._add_choice(choice)

    def _add_choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        slot = self._choices.get(index)
        if slot is None:
            slot = self._choices[index] = {"content": [], "refusal": [], "tool_calls": {}, "finish_reason": None}
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content:
                slot["content"].append(content)
            refusal = delta.get("refusal")
            if refusal:
                slot["refusal"].append(refusal)
            calls = delta.get("tool_calls")
            if calls:
                self._add_tool_calls(slot["tool_calls"], calls)
        finish = choice.get("finish_reason")
        if finish:
            slot["finish_reason"] = finish

    @staticmethod
    def _add_tool_calls(entries: dict[int, dict[str, Any]], calls: list[dict[str, Any]]) -> None:
        for call in calls:
            entry = entries.setdefault(call.get("index", 0), {
                "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
            if call.get("id"):
                entry["id"] = call["id"]
            function = call.get("function") or {}
            if function.get("name"):
                entry["function"]["name"] = function["name"]
            if function.get("arguments"):
                entry["function"]["arguments"] += function["arguments"]

    @property
    def complete(self) -> bool:
        """Whether every choice has finished (and every chunk was JSON)."""
        self._fold()
        return (not self.broken and bool(self._choices)
                and all(c["finish_reason"] for c in self._choices.values()))

    def completion(self) -> dict[str, Any]:
        """The ``chat.completion`` the stream amounted to."""
        self._fold()
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            # No content at all is null beside tool calls or a refusal (as OpenAI answers), else "".
            content = "".join(slot["content"]) if slot["content"] else (
                None if slot["tool_calls"] or slot["refusal"] else "")
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if slot["refusal"]:
                message["refusal"] = "".join(slot["refusal"])
            if slot["tool_calls"]:
                message["tool_calls"] = [slot["tool_calls"][i] for i in sorted(slot["tool_calls"])]
            choices.append({"index": index, "message": message, "finish_reason": slot["finish_reason"],
                            "logprobs": None})
        answer = {**self._head, "object": "chat.completion", "choices": choices}
        if self.usage is not None:
            answer["usage"] = self.usage
        return answer


def replay_chunks(answer: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    """The chunk payloads of a stream that delivers ``answer``."""
    head = {k: answer[k] for k in ("provider", "id", "created", "model", "system_fingerprint",
                                             "service_tier") if k in answer}
    head["object"] = "chat.completion.chunk"
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        calls = message.get("tool_calls") or ()
        # OpenAI opens a choice that has no content (tool calls, a refusal) with content null.
        empty = message.get("content") is None and bool(calls or message.get("refusal"))
        yield _chunk(head, index, {"role": "assistant", "content": None if empty else ""})
        if message.get("content"):
            yield _chunk(head, index, {"content": message["content"]})
        if message.get("refusal"):
            yield _chunk(head, index, {"refusal": message["refusal"]})
        for position, call in enumerate(calls):
            function = call.get("function") or {}
            yield _chunk(head, index, {"tool_calls": [{
                "index": position, "id": call.get("id"), "type": "function",
                "function": {"name": function.get("name"), "arguments": function.get("arguments", "")}}]})
        yield _chunk(head, index, {}, choice.get("finish_reason") or "stop")
    if include_usage and answer.get("usage"):
        yield orjson.dumps({**head, "choices": [], "usage": answer["usage"]})


def _chunk(head: dict[str, Any], index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return orjson.dumps({**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})

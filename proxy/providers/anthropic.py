"""Anthropic's Messages API (``type: anthropic``).

Callers speak OpenAI Chat Completions; this adapter sends each request to
``POST {base_url}/v1/messages`` with the provider's ``x-api-key`` (never the
caller's credentials) and translates the answer, plain or streamed, back into
OpenAI's shape. The translation itself lives in pure functions
(:func:`to_anthropic_request`, :func:`to_openai_response`,
:class:`StreamTranslator`) so it can be checked without any network.

Request mapping:

* ``system`` and ``developer`` messages are joined (blank line between) into
  the top-level ``system`` string, wherever they appear in the conversation.
* ``max_tokens`` is always sent: the request's ``max_completion_tokens`` or
  ``max_tokens``, else the model's configured ``max_tokens``, else
  :data:`DEFAULT_MAX_TOKENS`.
* ``stop`` becomes ``stop_sequences`` (a list); ``temperature``, ``top_p`` and
  Anthropic's own ``top_k`` are passed on; ``user`` becomes
  ``metadata.user_id``.
* ``tools`` and ``tool_choice`` are translated; ``parallel_tool_calls: false``
  becomes ``disable_parallel_tool_use``. Assistant ``tool_calls`` become
  ``tool_use`` blocks and ``tool`` messages become ``tool_result`` blocks,
  consecutive results sharing one ``user`` message.
* Text parts and ``image_url`` parts (``data:`` URLs as base64 sources,
  http(s) URLs as url sources) become content blocks.

Refused with a 400 naming the field, because Anthropic cannot honour them:
``n`` > 1, ``logit_bias``, ``logprobs``/``top_logprobs``, ``temperature`` > 1,
non-zero ``presence_penalty``/``frequency_penalty``, a ``response_format``
other than ``text``, ``audio`` output, ``prediction``,
``web_search_options``, the legacy ``functions``/``function_call`` and the
``function`` role, and content parts other than text and images.

Dropped without effect: fields at their no-op value (``n: 1``,
``logprobs: false``, zero penalties, ``response_format: {type: text}``,
``parallel_tool_calls: true``), ``seed`` (best effort even at OpenAI),
``stream_options`` (the gateway handles usage itself), the image ``detail``
hint, message ``name`` fields, tools' ``strict`` flag and any field Anthropic
does not know (Anthropic refuses unknown fields, so they are not forwarded).

Anthropic has no embeddings endpoint: embeddings requests get a 400.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import aiohttp
import orjson
from multidict import CIMultiDict

from proxy.errors import GatewayError
from proxy.providers.base import (
    ChatStream,
    StreamInterrupted,
    UpstreamCall,
    UpstreamError,
    upstream_http_error,
)
from proxy.providers.http import HttpAdapter, finish_response
from proxy.sse import Event, SSEParser

if TYPE_CHECKING:
    from proxy.config import ModelConfig

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when neither the request nor the model's config sets one."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status Anthropic uses for each error type, for errors that arrive
# inside a 200 answer (a stream's ``error`` event).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


# ===================================================================== requests


def to_anthropic_request(
    body: dict[str, Any], model: "ModelConfig", *, stream: bool = False
) -> dict[str, Any]:
    """The Messages API body for an OpenAI Chat Completions ``body``.

    Raises :class:`GatewayError` (400, ``param`` naming the field) for what
    Anthropic cannot do. ``body`` is not modified.
    """
    refuse_unsupported(body)
    system, messages = translate_messages(body.get("messages") or [])
    out: dict[str, Any] = {
        "model": model.upstream_model,
        "max_tokens": max_tokens_for(body, model),
        "messages": messages,
    }
    if system:
        out["system"] = system
    _copy_sampling(body, out)
    _copy_tools(body, out)
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if stream:
        out["stream"] = True
    return out


def _unsupported(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, code="unsupported_parameter", param=param)


def _nonzero(value: Any) -> bool:
    return isinstance(value, (int, float)) and value != 0


_REFUSED: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("n", lambda v: isinstance(v, int) and v > 1,
     "Anthropic models return one choice per request; send n=1 or leave n out."),
    ("logit_bias", bool, "Anthropic models do not support logit_bias; leave it out."),
    ("logprobs", bool, "Anthropic models do not return log probabilities; leave logprobs out."),
    ("top_logprobs", bool,
     "Anthropic models do not return log probabilities; leave top_logprobs out."),
    ("temperature", lambda v: isinstance(v, (int, float)) and v > 1,
     "Anthropic models accept a temperature from 0 to 1; send 1 or less."),
    ("presence_penalty", _nonzero,
     "Anthropic models do not support presence_penalty; leave it out."),
    ("frequency_penalty", _nonzero,
     "Anthropic models do not support frequency_penalty; leave it out."),
    ("response_format", lambda v: isinstance(v, dict) and v.get("type") not in (None, "text"),
     "Anthropic models do not support response_format here; describe the format in the "
     "prompt or use a tool instead."),
    ("functions", bool, "The legacy 'functions' field is not supported; use 'tools'."),
    ("function_call", lambda v: v is not None,
     "The legacy 'function_call' field is not supported; use 'tool_choice'."),
    ("audio", lambda v: v is not None, "Anthropic models do not produce audio."),
    ("modalities", lambda v: isinstance(v, list) and any(m != "text" for m in v),
     "Anthropic models only produce text; send modalities: ['text'] or leave it out."),
    ("prediction", lambda v: v is not None, "Anthropic models do not support predicted outputs."),
    ("web_search_options", lambda v: v is not None,
     "web_search_options is not supported for Anthropic models."),
)


def refuse_unsupported(body: dict[str, Any]) -> None:
    """Raise a 400 for the first field Anthropic cannot honour."""
    for field, refused, message in _REFUSED:
        value = body.get(field)
        if value is not None and refused(value):
            raise _unsupported(field, message)


def max_tokens_for(body: dict[str, Any], model: "ModelConfig") -> int:
    """The request's token limit, else the model's configured one, else the default."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if isinstance(value, int) and value > 0:
            return value
    return model.max_tokens or DEFAULT_MAX_TOKENS


def _copy_sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    for field in ("temperature", "top_p", "top_k"):
        if body.get(field) is not None:
            out[field] = body[field]
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = list(stop)


# --------------------------------------------------------------- messages


def translate_messages(messages: list[Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The top-level ``system`` text and the Anthropic ``messages`` list."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_system_text(message.get("content"), where))
        elif role == "user":
            out.append({"role": "user", "content": _user_content(message.get("content"), where)})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_content(message, where)})
        elif role == "tool":
            _add_tool_result(out, message, where)
        else:
            raise _unsupported(f"{where}.role", f"Role '{role}' is not supported for Anthropic "
                               "models; use 'tool' messages with tool_call_id.")
    return "\n\n".join(text for text in system if text) or None, out


def _system_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if part.get("type") != "text":
            raise _unsupported(f"{where}.content[{j}].type",
                               "System and developer messages may only contain text.")
        texts.append(part.get("text") or "")
    return "\n\n".join(texts)


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if content is None:
        raise GatewayError(400, "A user message needs content.", code="invalid_request",
                           param=f"{where}.content")
    return [_content_block(part, f"{where}.content[{j}]") for j, part in enumerate(content)]


def _content_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("text") or ""}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal") or ""}
    if kind == "image_url":
        return image_block(part.get("image_url"), f"{where}.image_url.url")
    raise _unsupported(f"{where}.type",
                       f"Content parts of type '{kind}' are not supported for Anthropic models.")


def image_block(image_url: Any, where: str) -> dict[str, Any]:
    """An Anthropic image block for an OpenAI ``image_url`` (data: or http(s) URL)."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if isinstance(url, str) and url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        params = header.split(";")
        if sep and params[0] and "base64" in params[1:]:
            return {"type": "image",
                    "source": {"type": "base64", "media_type": params[0], "data": data}}
    raise GatewayError(400, "An image must be an http(s) URL or a base64 data: URL "
                       "such as data:image/png;base64,....", code="invalid_image_url", param=where)


def _assistant_content(message: dict[str, Any], where: str) -> str | list[dict[str, Any]]:
    content = message.get("content")
    tool_calls = message.get("tool_calls") or []
    if not tool_calls and not isinstance(content, list):
        return content or ""
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        blocks.extend(
            _content_block(part, f"{where}.content[{j}]") for j, part in enumerate(content)
        )
    blocks.extend(
        tool_use_block(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(tool_calls)
    )
    return blocks


def tool_use_block(call: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``tool_use`` block for one OpenAI assistant tool call."""
    if call.get("type", "function") != "function":
        raise _unsupported(f"{where}.type", "Only function tool calls are supported.")
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": parse_arguments(function.get("arguments"), f"{where}.function.arguments"),
    }


def parse_arguments(arguments: Any, where: str) -> dict[str, Any]:
    """A tool call's ``arguments`` (a JSON string) as an object; else a 400 naming ``where``."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"{where} is not valid JSON: {exc}",
                           code="invalid_tool_arguments", param=where) from None
    if not isinstance(value, dict):
        raise GatewayError(400, f"{where} must be a JSON object (a string holding one).",
                           code="invalid_tool_arguments", param=where)
    return value


def _add_tool_result(out: list[dict[str, Any]], message: dict[str, Any], where: str) -> None:
    tool_call_id = message.get("tool_call_id")
    if not tool_call_id:
        raise GatewayError(400, "A tool message needs the tool_call_id it answers.",
                           code="invalid_request", param=f"{where}.tool_call_id")
    content = message.get("content")
    if isinstance(content, list):
        content = [_content_block(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    block = {"type": "tool_result", "tool_use_id": tool_call_id, "content": content or ""}
    last = out[-1] if out else None
    if last is not None and last["role"] == "user" and _is_tool_results(last["content"]):
        last["content"].append(block)
    else:
        out.append({"role": "user", "content": [block]})


def _is_tool_results(content: Any) -> bool:
    return isinstance(content, list) and bool(content) and all(
        block.get("type") == "tool_result" for block in content
    )


# ------------------------------------------------------------------ tools


def _copy_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools") or []
    if tools:
        out["tools"] = [tool_definition(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = tool_choice_for(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(tools))
    if choice is not None:
        out["tool_choice"] = choice


def tool_definition(tool: dict[str, Any], where: str) -> dict[str, Any]:
    """An Anthropic tool for one OpenAI ``function`` tool."""
    if tool.get("type") != "function":
        raise _unsupported(f"{where}.type", "Only tools of type 'function' are supported "
                           "for Anthropic models.")
    function = tool.get("function") or {}
    out = {"name": function.get("name"),
           "input_schema": function.get("parameters") or _EMPTY_SCHEMA}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def tool_choice_for(choice: Any, parallel: Any, has_tools: bool) -> dict[str, Any] | None:
    """Anthropic's ``tool_choice`` for OpenAI's ``tool_choice`` and ``parallel_tool_calls``."""
    if not has_tools:
        if choice in (None, "auto", "none"):
            return None
        raise GatewayError(400, "tool_choice needs tools to choose from; send tools too.",
                           code="invalid_request", param="tool_choice")
    result = _choice_type(choice)
    if parallel is False:
        result = result or {"type": "auto"}
        if result["type"] != "none":
            result["disable_parallel_tool_use"] = True
    return result


def _choice_type(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    simple = {"auto": "auto", "required": "any", "none": "none"}.get(choice) if isinstance(
        choice, str) else None
    if simple:
        return {"type": simple}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise _unsupported("tool_choice", "tool_choice must be 'auto', 'required', 'none' or "
                       "{\"type\": \"function\", \"function\": {\"name\": ...}}.")


# ==================================================================== answers


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's ``finish_reason`` for Anthropic's ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop")


def to_openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI ``usage`` for Anthropic's: cache reads and writes count as prompt tokens."""
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cache_read + cache_write
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    }


def to_openai_response(doc: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The ``chat.completion`` for an Anthropic ``message`` answer."""
    blocks = [block for block in doc.get("content") or [] if isinstance(block, dict)]
    texts = [block.get("text") or "" for block in blocks if block.get("type") == "text"]
    tool_calls = [
        {"id": block.get("id"), "type": "function",
         "function": {"name": block.get("name"), "arguments": _compact(block.get("input"))}}
        for block in blocks if block.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool_calls and not texts else "".join(texts),
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": doc.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": doc.get("model"),
        "choices": [{"index": 0, "message": message,
                     "finish_reason": finish_reason(doc.get("stop_reason")), "logprobs": None}],
        "usage": to_openai_usage(doc.get("usage") or {}),
    }


def _compact(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


# ==================================================================== streams


class StreamTranslator:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` dicts out.

    Pure: no I/O. Feed each event's parsed ``data`` to :meth:`translate`;
    ``finished`` turns true on ``message_stop``, and :meth:`openai_usage` then
    gives the final token counts. ``error`` events are the caller's to handle.
    """

    def __init__(self, include_usage: bool = False, created: int | None = None) -> None:
        self.include_usage = include_usage
        self.created = int(time.time()) if created is None else created
        self.id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.finished = False
        self._tool_index: dict[int, int] = {}

    def translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks one event produces (often none)."""
        handler = self._HANDLERS.get(event.get("type"))
        return handler(self, event) if handler is not None else []

    def openai_usage(self) -> dict[str, Any]:
        """The usage reported so far, in OpenAI's shape."""
        return to_openai_usage(self.usage)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _message_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        message = event.get("message") or {}
        self.id = message.get("id")
        self.model = message.get("model")
        self._take_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        block = event.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        index = self._tool_index.setdefault(event.get("index", -1), len(self._tool_index))
        arguments = _compact(block["input"]) if block.get("input") else ""
        call = {"index": index, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments}}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        index = self._tool_index.get(event.get("index", -1))
        piece_json = delta.get("partial_json") if delta.get("type") == "input_json_delta" else None
        if piece_json and index is not None:
            piece = {"index": index, "function": {"arguments": piece_json}}
            return [self._chunk({"tool_calls": [piece]})]
        return []

    def _message_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
        self._take_usage(event.get("usage"))
        return []

    def _message_stop(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.finished = True
        chunks = [self._chunk({}, finish_reason(self.stop_reason))]
        if self.include_usage:
            chunks.append({"id": self.id, "object": "chat.completion.chunk",
                           "created": self.created, "model": self.model,
                           "choices": [], "usage": self.openai_usage()})
        return chunks

    def _take_usage(self, usage: Any) -> None:
        """Counts are cumulative: a later report overwrites an earlier one."""
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if isinstance(v, int)})

    _HANDLERS: dict[str, Callable[["StreamTranslator", dict[str, Any]], list[dict[str, Any]]]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
    }


# ==================================================================== adapter


class AnthropicAdapter(HttpAdapter):
    """Adapter for Anthropic's Messages API."""

    def request_headers(self, call: UpstreamCall) -> CIMultiDict[str]:
        """Headers for Anthropic: our key, never the caller's; configured headers win."""
        headers: CIMultiDict[str] = CIMultiDict({
            "content-type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            "X-Request-Id": call.request_id,
        })
        key = self.key_for(call)
        if key:
            headers["x-api-key"] = key
        for name, value in self.config.headers.items():
            headers[name] = value
        return headers

    def messages_url(self) -> str:
        """Where messages go (a base URL already ending in ``/v1`` is accepted too)."""
        base = self.config.base_url
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    async def embeddings(self, call: UpstreamCall) -> dict[str, Any]:
        """Anthropic has no embeddings endpoint: always a 400."""
        raise GatewayError(
            400,
            f"Provider '{self.name}' is Anthropic, which has no embeddings endpoint; "
            "choose an embeddings model from another provider.",
            code="unsupported_endpoint",
            param="model",
        )

    # ------------------------------------------------------------ plain calls

    async def chat(self, call: UpstreamCall) -> dict[str, Any]:
        """POST a message and return it as a ``chat.completion``."""
        payload = orjson.dumps(to_anthropic_request(call.body, call.model))
        raw = await self.post_for_body(self.messages_url(), payload, call)
        return to_openai_response(self._parse_answer(raw))

    def _parse_answer(self, raw: bytes) -> dict[str, Any]:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and doc.get("type") == "error":
            raise self.error_from(raw, doc)
        if not isinstance(doc, dict) or not isinstance(doc.get("content"), list):
            raise self.bad_response("an answer that is not a message")
        return doc

    def error_from(self, raw: bytes, doc: dict[str, Any]) -> UpstreamError:
        """The error for an Anthropic error document that came with HTTP 200."""
        kind = (doc.get("error") or {}).get("type") if isinstance(doc.get("error"), dict) else None
        return upstream_http_error(self.name, ERROR_STATUS.get(kind, 500), raw)

    # ------------------------------------------------------------ streams

    async def chat_stream(self, call: UpstreamCall) -> ChatStream:
        """Open the upstream stream; fail with :class:`UpstreamError` if it cannot start."""
        payload = orjson.dumps(to_anthropic_request(call.body, call.model, stream=True))
        return await self.open_stream(self.messages_url(), payload, call)

    async def read_chunks(
        self, resp: aiohttp.ClientResponse, call: UpstreamCall, stream: ChatStream
    ) -> AsyncIterator[list[bytes]]:
        translator = StreamTranslator(include_usage=call.include_usage)
        parser = SSEParser()
        pieces = resp.content.iter_any()
        try:
            with self.stream_failures():
                while not translator.finished:
                    piece = await anext(pieces, None)  # None: the stream ended; flush the parser
                    events = parser.feed(piece) if piece is not None else parser.flush()
                    batch, failure = self._take_batch(events, translator, stream)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
                    if piece is None:
                        break
            if not translator.finished:
                raise self.stream_cut()
        finally:
            finish_response(resp, translator.finished)

    def _take_batch(self, events: list[Event], translator: StreamTranslator, stream: ChatStream
                    ) -> tuple[list[bytes], StreamInterrupted | None]:
        """The OpenAI chunks of one read's events, and the failure that ended them (returned, not
        raised, so that the chunks before it still reach the caller)."""
        batch: list[bytes] = []
        for event in events:
            try:
                batch += self._on_event(event, translator, stream)
            except StreamInterrupted as exc:
                return batch, exc
            if translator.finished:
                break
        return batch, None

    def _on_event(
        self, event: Event, translator: StreamTranslator, stream: ChatStream
    ) -> list[bytes]:
        """The chunk payloads for one SSE event; errors end the stream."""
        if not event.data:
            return []
        try:
            doc = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise StreamInterrupted(self.bad_response(f"a stream event '{event.name}' that is not JSON")) from None
        if not isinstance(doc, dict):
            raise StreamInterrupted(self.bad_response(f"a stream event '{event.name}' that is not an object"))
        doc.setdefault("type", event.name)
        if doc["type"] == "error":
            raise StreamInterrupted(self.error_from(event.data, doc))
        chunks = translator.translate(doc)
        if translator.finished:
            stream.usage = translator.openai_usage()
        return [orjson.dumps(chunk) for chunk in chunks]


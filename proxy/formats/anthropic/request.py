"""OpenAI Chat Completions requests as Anthropic Messages requests: pure translation, no I/O.

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
  ``max_tokens``, else the model's ``default_max_tokens``, else
  :data:`DEFAULT_MAX_TOKENS` (4096), or the model's configured ``max_tokens``
  if that is lower. The configured value is a limit
  on what callers may ask for, not a default: models are often configured
  with their context size, which Anthropic refuses as an output limit.
* ``stop`` becomes ``stop_sequences`` (a list); ``temperature``, ``top_p`` and
  Anthropic's own ``top_k`` are passed on; ``user`` becomes
  ``metadata.user_id``.
* ``tools`` and ``tool_choice`` are translated; ``parallel_tool_calls: false``
  becomes ``disable_parallel_tool_use``. Assistant ``tool_calls`` become
  ``tool_use`` blocks and ``tool`` messages become ``tool_result`` blocks,
  consecutive results sharing one ``user`` message.
* Text parts and ``image_url`` parts (``data:`` URLs as base64 sources,
  http(s) URLs as url sources) become content blocks.
* ``cache_control`` markers reach Anthropic exactly as the caller set them:
  on text and image parts of any message (where OpenRouter and LiteLLM take
  them) and on a tool (LiteLLM's place for a tool's marker). A system or
  developer part that carries one makes ``system`` a list of text blocks, one
  per part, instead of one joined string. A marker on a ``tool`` message's
  part goes on its ``tool_result`` block (the last one if several), since
  Anthropic refuses markers inside ``tool_result.content``.

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

Malformed fields (a JSON value of the wrong type where the translation needs
an object, a list, a string or a number, such as a text part whose ``text`` is
a number) get a 400 with ``code: invalid_request`` and ``param`` naming the
exact field (``messages[0].content[1].text``), never a 500.

Answers and stream events are read defensively: blocks, counts and texts of
the wrong type are skipped (a count that is not a non-negative integer counts
as 0), so an odd upstream document never raises here; the adapter refuses an
answer that is not a message as ``upstream_bad_response``.

Anthropic has no embeddings endpoint: embeddings requests get a 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import orjson

from proxy.errors import ErrorCode, GatewayError
from proxy.formats.anthropic.fields import described as _described
from proxy.formats.anthropic.fields import invalid as _invalid
from proxy.formats.anthropic.fields import is_number as _is_number
from proxy.formats.anthropic.fields import json_type_name
from proxy.formats.anthropic.fields import optional_text as _optional_text
from proxy.formats.anthropic.fields import require_list as _list
from proxy.formats.anthropic.fields import require_name as _name
from proxy.formats.anthropic.fields import require_object as _object
from proxy.formats.anthropic.fields import unsupported as _unsupported
from proxy.formats.anthropic.fields import with_cache_control
from proxy.formats.anthropic.fields import wrong_type as _wrong_type
from proxy.formats.anthropic.response import MAX_COUNT, is_whole

if TYPE_CHECKING:
    from proxy.config import ModelConfig

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the request sets none (lowered to the model's configured limit)."""


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
    given = body.get("messages")
    system, messages = translate_messages(
        [] if given is None else _list(given, "messages", "a list of message objects"))
    out: dict[str, Any] = {
        "model": model.upstream_model,
        "max_tokens": max_tokens_for(body, model),
        "messages": messages,
    }
    if system:
        out["system"] = system
    _copy_sampling(body, out)
    _copy_tools(body, out)
    user = _optional_text(body.get("user"), "user")
    if user:
        out["metadata"] = {"user_id": user}
    if stream:
        out["stream"] = True
    return out


def _nonzero(value: Any) -> bool:
    return isinstance(value, (int, float)) and value != 0


_REFUSED: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("n", lambda v: _is_number(v) and v > 1,
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
    ("modalities", lambda v: not isinstance(v, list) or any(m != "text" for m in v),
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
    """The request's token limit, else the model's ``default_max_tokens``, else
    :data:`DEFAULT_MAX_TOKENS` capped by the model's limit.

    The model's configured ``max_tokens`` is the most a caller may ask for, not
    what to ask for when the caller says nothing. A limit that is not a whole
    number of at least 1 is a 400 naming the field.
    """
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is not None:
            return _token_limit(value, field)
    if model.default_max_tokens is not None:
        return model.default_max_tokens
    return min(model.max_tokens, DEFAULT_MAX_TOKENS) if model.max_tokens else DEFAULT_MAX_TOKENS


def _token_limit(value: Any, field: str) -> int:
    """``value`` as a positive whole number of tokens (``256.0`` is ``256``), else a 400."""
    if isinstance(value, float) and value.is_integer() and 1 <= value <= MAX_COUNT:
        return int(value)
    if is_whole(value) and 1 <= value <= MAX_COUNT:
        return value
    given = value if _is_number(value) else json_type_name(value)
    raise _invalid(field, f"{field} must be a whole number of tokens from 1 to {MAX_COUNT} "
                   f"(such as 1024), not {given}; send one or leave {field} out.")


def _copy_sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    for field in ("temperature", "top_p"):
        value = body.get(field)
        if value is not None and not _is_number(value):
            raise _wrong_type(field, "a number", value)
        if value is not None:
            out[field] = value
    top_k = body.get("top_k")
    if top_k is not None and not is_whole(top_k):
        raise _wrong_type("top_k", "a whole number", top_k)
    if top_k is not None:
        out["top_k"] = top_k
    stop = stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop


def stop_sequences(stop: Any) -> list[str]:
    """Anthropic's ``stop_sequences`` for OpenAI's ``stop`` (a string or a list of strings)."""
    if stop is None or isinstance(stop, str):
        return [stop] if stop else []
    for i, sequence in enumerate(_list(stop, "stop", "a string or a list of strings")):
        if not isinstance(sequence, str):
            raise _wrong_type(f"stop[{i}]", "a string", sequence)
    return list(stop)


# --------------------------------------------------------------- messages


def translate_messages(
    messages: list[Any],
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """The top-level ``system`` (see :func:`system_field`) and the Anthropic ``messages`` list."""
    system: list[list[dict[str, Any]]] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = _object(message, where, "a message object with a role").get("role")
        if role in ("system", "developer"):
            system.append(_system_blocks(message.get("content"), where))
        elif role == "user":
            out.append({"role": "user", "content": _user_content(message.get("content"), where)})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_content(message, where)})
        elif role == "tool":
            _add_tool_result(out, message, where)
        elif role == "function":
            raise _unsupported(f"{where}.role", "Role 'function' is not supported for Anthropic "
                               "models; use 'tool' messages with tool_call_id.")
        else:
            raise _invalid(f"{where}.role", f"{where}.role must be one of 'system', 'developer', "
                           f"'user', 'assistant' or 'tool', not {_described(role)}.")
    return system_field(system), out


def system_field(messages: list[list[dict[str, Any]]]) -> str | list[dict[str, Any]] | None:
    """Anthropic's ``system`` for the text blocks of each system or developer message.

    One string (parts joined by a blank line, messages too) unless a part
    carries a ``cache_control`` marker: then the list of text blocks, so the
    marker reaches Anthropic exactly where the caller put it.
    """
    blocks = [block for message in messages for block in message]
    if any("cache_control" in block for block in blocks):
        return [block for block in blocks if block["text"] or "cache_control" in block]
    texts = ["\n\n".join(block["text"] for block in message) for message in messages]
    return "\n\n".join(text for text in texts if text) or None


def _parts(content: Any, where: str) -> list[Any]:
    """A message's content parts; a 400 naming ``{where}.content`` if it is not a list."""
    return _list(content, f"{where}.content", "a string or a list of content parts")


def _text_content(content: Any, where: str) -> str:
    """Content that is not a list of parts: a string, or ``""`` for null; else a 400."""
    if content is not None and not isinstance(content, str):
        raise _wrong_type(f"{where}.content", "a string, a list of content parts or null", content)
    return content or ""


def _part(part: Any, where: str) -> dict[str, Any]:
    """One content part, which must be an object with a ``type``."""
    return _object(part, where, "a content part object such as {\"type\": \"text\", \"text\": ...}")


def _system_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A system or developer message's text blocks: one for a string, one per part for a list."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content or ""}]
    blocks = []
    for j, part in enumerate(_parts(content, where)):
        if _part(part, f"{where}.content[{j}]").get("type") != "text":
            raise _unsupported(f"{where}.content[{j}].type",
                               "System and developer messages may only contain text.")
        blocks.append(_text_block(part, f"{where}.content[{j}]"))
    return blocks


def _text_block(part: dict[str, Any], where: str, field: str = "text") -> dict[str, Any]:
    """A text block for a ``text`` (or ``refusal``) part, its ``cache_control`` kept."""
    text = _optional_text(part.get(field), f"{where}.{field}")
    return with_cache_control({"type": "text", "text": text}, part, where)


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if content is None:
        raise GatewayError(400, "A user message needs content.", code=ErrorCode.INVALID_REQUEST,
                           param=f"{where}.content")
    return _content_blocks(content, where)


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """The Anthropic blocks for a list of content parts (``where`` names the message)."""
    return [_content_block(part, f"{where}.content[{j}]")
            for j, part in enumerate(_parts(content, where))]


def _content_block(part: Any, where: str) -> dict[str, Any]:
    kind = _part(part, where).get("type")
    if kind == "text":
        return _text_block(part, where)
    if kind == "refusal":
        return _text_block(part, where, "refusal")
    if kind == "image_url":
        return with_cache_control(image_block(part.get("image_url"), f"{where}.image_url.url"),
                                  part, where)
    raise _unsupported(f"{where}.type", f"Content parts of type {_described(kind)} are not "
                       "supported for Anthropic models; send 'text' or 'image_url' parts.")


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
                       "such as data:image/png;base64,....", code=ErrorCode.INVALID_IMAGE_URL, param=where)


def _assistant_content(message: dict[str, Any], where: str) -> str | list[dict[str, Any]]:
    content = message.get("content")
    tool_calls = message.get("tool_calls")
    tool_calls = [] if tool_calls is None else _list(
        tool_calls, f"{where}.tool_calls", "a list of tool call objects")
    if not isinstance(content, list):
        content = _text_content(content, where)
    if not tool_calls and not isinstance(content, list):
        return content
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        blocks.extend(_content_blocks(content, where))
    blocks.extend(
        tool_use_block(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(tool_calls)
    )
    return blocks


def tool_use_block(call: Any, where: str) -> dict[str, Any]:
    """A ``tool_use`` block for one OpenAI assistant tool call; a 400 naming the field if odd."""
    call = _object(call, where, "a tool call object with id, type and function")
    if call.get("type", "function") != "function":
        raise _unsupported(f"{where}.type", "Only function tool calls are supported; "
                           "send type 'function'.")
    function = _object(call.get("function"), f"{where}.function",
                       "an object with the function's name and arguments")
    return {
        "type": "tool_use",
        "id": _name(call.get("id"), f"{where}.id"),
        "name": _name(function.get("name"), f"{where}.function.name"),
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
                           code=ErrorCode.INVALID_TOOL_ARGUMENTS, param=where) from None
    if not isinstance(value, dict):
        raise GatewayError(400, f"{where} must be a JSON object (a string holding one).",
                           code=ErrorCode.INVALID_TOOL_ARGUMENTS, param=where)
    return value


def _add_tool_result(out: list[dict[str, Any]], message: dict[str, Any], where: str) -> None:
    tool_call_id = message.get("tool_call_id")
    if not tool_call_id:
        raise GatewayError(400, f"{where}.tool_call_id is missing: a tool message needs the "
                           "tool_call_id it answers.", code=ErrorCode.INVALID_REQUEST,
                           param=f"{where}.tool_call_id")
    tool_call_id = _name(tool_call_id, f"{where}.tool_call_id")
    content = message.get("content")
    if isinstance(content, list):
        content = _content_blocks(content, where)
    else:
        content = _text_content(content, where)
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id, "content": content or ""}
    marker = _lift_cache_control(content) if isinstance(content, list) else None
    if marker is not None:
        block["cache_control"] = marker
    last = out[-1] if out else None
    if last is not None and last["role"] == "user" and _is_tool_results(last["content"]):
        last["content"].append(block)
    else:
        out.append({"role": "user", "content": [block]})


def _lift_cache_control(blocks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Take the markers off a tool result's blocks: the last one, for the ``tool_result`` itself.

    Anthropic refuses ``cache_control`` inside ``tool_result.content`` and
    asks for it on the ``tool_result`` block, which caches the same prefix.
    """
    marker = None
    for block in blocks:
        marker = block.pop("cache_control", None) or marker
    return marker


def _is_tool_results(content: Any) -> bool:
    return isinstance(content, list) and bool(content) and all(
        block.get("type") == "tool_result" for block in content
    )


# ------------------------------------------------------------------ tools


def _copy_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    tools = [] if tools is None else _list(tools, "tools", "a list of tool objects")
    if tools:
        out["tools"] = [tool_definition(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _wrong_type("parallel_tool_calls", "true or false", parallel)
    choice = tool_choice_for(body.get("tool_choice"), parallel, bool(tools))
    if choice is not None:
        out["tool_choice"] = choice


def tool_definition(tool: Any, where: str) -> dict[str, Any]:
    """An Anthropic tool for one OpenAI ``function`` tool; a 400 naming the field if odd."""
    tool = _object(tool, where, "a tool object such as {\"type\": \"function\", \"function\": ...}")
    if tool.get("type") != "function":
        raise _unsupported(f"{where}.type", "Only tools of type 'function' are supported "
                           "for Anthropic models.")
    function = _object(tool.get("function"), f"{where}.function",
                       "an object with the function's name, description and parameters")
    parameters = function.get("parameters")
    if parameters is not None:
        _object(parameters, f"{where}.function.parameters", "a JSON Schema object")
    out = {"name": _name(function.get("name"), f"{where}.function.name"),
           "input_schema": parameters or _EMPTY_SCHEMA}
    description = _optional_text(function.get("description"), f"{where}.function.description")
    if description:
        out["description"] = description
    return with_cache_control(out, tool, where)


def tool_choice_for(choice: Any, parallel: Any, has_tools: bool) -> dict[str, Any] | None:
    """Anthropic's ``tool_choice`` for OpenAI's ``tool_choice`` and ``parallel_tool_calls``."""
    if not has_tools:
        if choice in (None, "auto", "none"):
            return None
        raise GatewayError(400, "tool_choice needs tools to choose from; send tools too.",
                           code=ErrorCode.INVALID_REQUEST, param="tool_choice")
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
        function = _object(choice.get("function"), "tool_choice.function",
                           "an object naming the tool, such as {\"name\": \"get_weather\"}")
        return {"type": "tool", "name": _name(function.get("name"), "tool_choice.function.name")}
    raise _unsupported("tool_choice", "tool_choice must be 'auto', 'required', 'none' or "
                       "{\"type\": \"function\", \"function\": {\"name\": ...}}.")

"""Anthropic Messages requests as OpenAI Chat Completions requests: pure translation, no I/O.

The inbound direction: a caller speaks Anthropic's Messages API
(``POST /v1/messages``: the anthropic SDKs, Claude Code) and the model that
serves it is behind an OpenAI-style upstream. :func:`to_chat_request` gives
the Chat Completions body for a Messages body; it is the outbound mapping of
:mod:`proxy.formats.anthropic.request` read backwards, plus what only the
Messages side has (documents, thinking, ``is_error``, automatic caching).

Request mapping:

* ``system`` (a string, or a list of text blocks) becomes a leading
  ``system`` message (a string, or text parts); ``role: system`` entries in
  ``messages`` stay system messages.
* ``max_tokens`` (required, as at Anthropic) becomes ``max_completion_tokens``:
  OpenAI documents ``max_tokens`` as deprecated and its reasoning models
  refuse it.
* ``stop_sequences`` becomes ``stop``; ``temperature`` and ``top_p`` pass on;
  ``metadata.user_id`` becomes ``user`` and ``metadata.task_type`` the
  gateway's own ``task_type``; ``stream: true`` also asks for
  ``stream_options.include_usage`` so the stream's ``message_delta`` can
  carry the token counts.
* Text blocks become text parts, images ``image_url`` parts (base64 sources
  as ``data:`` URLs, url sources as they are), PDF documents sent as base64
  OpenAI ``file`` parts (``file_data`` as a ``data:`` URL, ``filename`` the
  document's ``title`` or ``document.pdf``), plain-text documents text parts
  and documents with a ``content`` source their text and image parts.
* Assistant ``tool_use`` blocks become ``tool_calls`` (``input`` as the
  ``arguments`` JSON string) and their text blocks the message's text;
  ``tool_result`` blocks become ``tool`` messages, placed before the rest of
  their user turn as OpenAI requires. A result's images and documents, which
  a Chat ``tool`` message cannot hold, go into the user message that follows
  the tool messages. ``is_error: true`` starts the result's text with
  ``Error: `` (Chat has no error flag).
* ``tools`` (custom tools: ``name``, ``description``, ``input_schema``,
  ``strict``) become ``function`` tools; ``tool_choice`` ``auto`` / ``any`` /
  ``tool`` / ``none`` becomes ``"auto"`` / ``"required"`` /
  ``{"type": "function", ...}`` / ``"none"``, and
  ``disable_parallel_tool_use: true`` becomes ``parallel_tool_calls: false``.
* ``thinking`` becomes ``reasoning_effort``: ``enabled`` by its
  ``budget_tokens`` (see :func:`effort_for_budget`), ``adaptive`` and
  ``between_tools`` leave the model its default, ``disabled`` sends nothing;
  ``output_config.effort``, when given, is sent as it is and wins.
  ``output_config.format`` (and the older ``output_format``) of type
  ``json_schema`` becomes a strict ``json_schema`` ``response_format``.
* ``cache_control`` markers stay where the caller put them, on the text,
  image and file parts and on the tools (where OpenRouter and LiteLLM take
  them); a top-level ``cache_control`` (automatic caching) is put on the last
  part of the last message that has content, as Anthropic would.

Ignored (they change no answer an OpenAI-style model gives): ``top_k`` (no
Chat equivalent; OpenAI refuses it), ``service_tier``, ``context_management``,
``diagnostics``, ``speed``, ``user_profile_id``, ``workspace_id``; in
blocks, ``citations`` of text blocks, the ``title`` and ``context`` of
non-PDF documents, ``thinking`` and ``redacted_thinking`` blocks of earlier
assistant turns (their signatures mean nothing to another model), a
``cache_control`` on a ``tool_use`` block (a tool call has no place for it),
``thinking.display`` and tools' ``defer_loading``, ``input_examples`` and
``eager_input_streaming``.

Refused with a 400 naming the exact field (``code: unsupported_parameter``):
server and built-in tools (any tool ``type`` but ``custom``), their blocks
(``server_tool_use``, ``web_search_tool_result``...), ``search_result``
blocks, ``file`` sources (Anthropic's Files API), PDF ``url`` sources,
documents with ``citations`` enabled, tools whose ``allowed_callers`` leave
out ``direct``, ``container``, ``mcp_servers``, ``inference_geo`` and any
top-level field the Messages API does not define. Malformed fields get a 400
``invalid_request`` naming them, as in the outbound direction.
"""

from __future__ import annotations

from typing import Any, Callable

from proxy.formats.anthropic.fields import (
    cache_control_of,
    described,
    invalid,
    is_number,
    optional_object,
    optional_text,
    require_list,
    require_name,
    require_object,
    unsupported,
    with_cache_control,
    wrong_type,
)
from proxy.formats.anthropic.response import MAX_COUNT, compact_json, is_whole

IGNORED_FIELDS = frozenset({
    "top_k", "service_tier", "context_management", "diagnostics", "speed",
    "user_profile_id", "workspace_id",
})
"""Top-level Messages fields accepted and not sent on: no Chat Completions equivalent changes the answer."""

REFUSED_FIELDS = {
    "container": "Containers exist only at Anthropic; leave container out for this model.",
    "mcp_servers": "The MCP connector exists only at Anthropic; leave mcp_servers out for this "
                   "model and send the tools as custom tools.",
    "inference_geo": "inference_geo cannot be honoured by this model's provider; leave it out.",
}
"""Top-level Messages fields this translation refuses, with what to do instead."""

TRANSLATED_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "tools", "tool_choice", "thinking", "output_config",
    "output_format", "cache_control",
})
"""Top-level Messages fields this translation maps to Chat Completions fields."""

EFFORTS = ("low", "medium", "high", "xhigh", "max")
"""``output_config.effort`` values; Chat Completions' ``reasoning_effort`` takes the same words."""

LOW_EFFORT_BELOW = 4096
MEDIUM_EFFORT_BELOW = 16384
"""Thinking budgets below 4,096 tokens ask for ``low`` effort, below 16,384 ``medium``, else ``high``."""

DEFAULT_PDF_NAME = "document.pdf"
"""The ``filename`` of a PDF ``file`` part when the document has no ``title``."""

SERVER_BLOCKS = frozenset({
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result", "tool_search_tool_result", "container_upload",
    "mcp_tool_use", "mcp_tool_result", "tool_reference",
})


# ===================================================================== the body


def to_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The Chat Completions body for an Anthropic Messages ``body``.

    Raises :class:`GatewayError` (400, ``param`` naming the exact field) for
    what cannot be mapped and for malformed fields. ``body`` is not modified
    and shares no mutable part with the result but ``cache_control`` markers
    and tool schemas, which neither side changes.
    """
    refuse_unknown_fields(body)
    out: dict[str, Any] = {}
    model = body.get("model")
    if model is not None:
        out["model"] = require_name(model, "model")
    messages = require_list(body.get("messages"), "messages", "a list of message objects")
    if not messages:
        raise invalid("messages", "messages must hold at least one message.")
    out["messages"] = system_messages(body.get("system")) + translate_messages(messages)
    out["max_completion_tokens"] = max_tokens_of(body.get("max_tokens"))
    _copy_sampling(body, out)
    _copy_tools(body, out)
    _copy_metadata(body.get("metadata"), out)
    _copy_output(body, out)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise wrong_type("stream", "true or false", stream)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    marker = cache_control_of(body, "")  # automatic caching
    if marker is not None:
        mark_last_part(out["messages"], marker)
    return out


def refuse_unknown_fields(body: dict[str, Any]) -> None:
    """A 400 naming the first top-level field that is refused or that the Messages API does not define."""
    for field in body:
        if field in TRANSLATED_FIELDS or field in IGNORED_FIELDS:
            continue
        message = REFUSED_FIELDS.get(field) or (
            f"{field} is not a Messages API field this gateway can send to this model; leave it out.")
        raise unsupported(field, message)


def max_tokens_of(value: Any) -> int:
    """``max_tokens``: required, a whole number of tokens from 1 up (``1024.0`` is ``1024``)."""
    if value is None:
        raise invalid("max_tokens", "max_tokens is required: the most tokens to generate, "
                      "such as 1024.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not is_whole(value) or not 1 <= value <= MAX_COUNT:
        given = value if is_number(value) else described(value)
        raise invalid("max_tokens", f"max_tokens must be a whole number of tokens from 1 to "
                      f"{MAX_COUNT} (such as 1024), not {given}.")
    return value


def _copy_sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    for field in ("temperature", "top_p"):
        value = body.get(field)
        if value is not None and not is_number(value):
            raise wrong_type(field, "a number", value)
        if value is not None:
            out[field] = value
    stops = body.get("stop_sequences")
    if stops is None:
        return
    for i, stop in enumerate(require_list(stops, "stop_sequences", "a list of strings")):
        if not isinstance(stop, str):
            raise wrong_type(f"stop_sequences[{i}]", "a string", stop)
    if stops:
        out["stop"] = list(stops)


def _copy_metadata(metadata: Any, out: dict[str, Any]) -> None:
    metadata = optional_object(metadata, "metadata", "an object such as {\"user_id\": ...}")
    for key, value in (metadata or {}).items():
        if key == "user_id":
            user = optional_text(value, "metadata.user_id")
            if user:
                out["user"] = user
        elif key == "task_type":
            out["task_type"] = require_name(value, "metadata.task_type")
        else:
            raise unsupported(f"metadata.{key}", f"metadata.{key} is not a Messages API field; "
                              "metadata takes user_id (and this gateway's task_type).")


# ================================================================ the messages


def system_messages(system: Any) -> list[dict[str, Any]]:
    """The leading ``system`` message for Anthropic's top-level ``system`` (none if empty)."""
    if system is None:
        return []
    content = system_content(system, "system")
    return [{"role": "system", "content": content}] if content else []


def system_content(value: Any, where: str) -> str | list[dict[str, Any]]:
    """A system prompt: a string as it is, a list of text blocks as text parts."""
    if isinstance(value, str):
        return value
    parts = []
    for j, block in enumerate(require_list(value, where, "a string or a list of text blocks")):
        place = f"{where}[{j}]"
        if _block(block, place).get("type") != "text":
            raise invalid(f"{place}.type", f"{place} must be a text block; a system prompt "
                          "holds only text.")
        parts.append(text_part(block, place))
    return parts


def translate_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """The Chat Completions messages for Anthropic's ``messages`` list (``system`` excluded)."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        message = require_object(message, where, "a message object with a role and content")
        role, content = message.get("role"), message.get("content")
        if role == "user":
            out.extend(user_messages(content, where))
        elif role == "assistant":
            out.append(assistant_message(content, where))
        elif role == "system":
            out.append({"role": "system", "content": system_content(content, f"{where}.content")})
        else:
            raise invalid(f"{where}.role", f"{where}.role must be 'user' or 'assistant', "
                          f"not {described(role)}.")
    return out


def _block(block: Any, where: str) -> dict[str, Any]:
    return require_object(block, where, "a content block object such as "
                          "{\"type\": \"text\", \"text\": ...}")


def _blocks(content: Any, where: str) -> list[Any]:
    blocks = require_list(content, f"{where}.content", "a string or a list of content blocks")
    if not blocks:
        raise invalid(f"{where}.content", f"{where}.content must not be an empty list.")
    return blocks


def user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    """One user turn as Chat messages: its tool results as ``tool`` messages, then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    carried: list[dict[str, Any]] = []  # images and documents of tool results
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        place = f"{where}.content[{j}]"
        if _block(block, place).get("type") == "tool_result":
            message, extra = tool_message(block, place)
            tools.append(message)
            carried.extend(extra)
        else:
            parts.extend(content_parts(block, place))
    parts = carried + parts
    return tools + ([{"role": "user", "content": parts}] if parts else [])


def content_parts(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The Chat content parts for one user content block (a document may give several)."""
    kind = block.get("type")
    if kind == "text":
        return [text_part(block, where)]
    if kind == "image":
        return [image_part(block, where)]
    if kind == "document":
        return document_parts(block, where)
    if kind == "tool_use":
        raise invalid(f"{where}.type", "tool_use blocks belong in assistant messages.")
    raise _unsupported_block(kind, where)


def _unsupported_block(kind: Any, where: str) -> Exception:
    if isinstance(kind, str) and kind in SERVER_BLOCKS:
        return unsupported(f"{where}.type", f"{kind!r} blocks belong to Anthropic's server tools "
                           "and cannot be sent to this model.")
    return unsupported(f"{where}.type", f"Content blocks of type {described(kind)} cannot be "
                       "sent to this model; send text, image or document blocks.")


def text_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A Chat text part for a text block, its ``cache_control`` kept."""
    text = block.get("text")
    if not isinstance(text, str):
        raise wrong_type(f"{where}.text", "a string", text)
    return with_cache_control({"type": "text", "text": text}, block, where)


def image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A Chat ``image_url`` part for an image block (base64 as a ``data:`` URL, or its URL)."""
    source = require_object(block.get("source"), f"{where}.source",
                            "an object such as {\"type\": \"base64\", \"media_type\": ..., \"data\": ...}")
    kind = source.get("type")
    if kind == "base64":
        media_type = require_name(source.get("media_type"), f"{where}.source.media_type")
        data = require_name(source.get("data"), f"{where}.source.data")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = require_name(source.get("url"), f"{where}.source.url")
    else:
        raise _bad_source(kind, where, "base64 or url")
    return with_cache_control({"type": "image_url", "image_url": {"url": url}}, block, where)


def _bad_source(kind: Any, where: str, allowed: str) -> Exception:
    if kind == "file":
        return unsupported(f"{where}.source.type", "Sources of type 'file' name a file in "
                           "Anthropic's Files API, which this model cannot read; send the "
                           "bytes as a base64 source.")
    return invalid(f"{where}.source.type", f"{where}.source.type must be {allowed}, "
                   f"not {described(kind)}.")


def document_parts(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The Chat parts for a document block: a ``file`` part for a PDF, text for a text document."""
    citations = optional_object(block.get("citations"), f"{where}.citations",
                                "an object such as {\"enabled\": false}")
    if citations and citations.get("enabled"):
        raise unsupported(f"{where}.citations.enabled", "Citations are an Anthropic feature this "
                          "model cannot provide; leave citations disabled.")
    source = require_object(block.get("source"), f"{where}.source",
                            "an object such as {\"type\": \"base64\", \"media_type\": "
                            "\"application/pdf\", \"data\": ...}")
    kind = source.get("type")
    if kind == "base64":
        parts = [_pdf_part(block, source, where)]
    elif kind == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise wrong_type(f"{where}.source.data", "a string", data)
        parts = [{"type": "text", "text": data}]
    elif kind == "content":
        parts = _source_content_parts(source.get("content"), f"{where}.source.content")
    elif kind == "url":
        raise unsupported(f"{where}.source.type", "A document given by URL cannot be sent to this "
                          "model (its file parts take the bytes); send it as a base64 source.")
    else:
        raise _bad_source(kind, where, "base64, text or content")
    marker = cache_control_of(block, where)
    if marker is not None and parts:
        parts[-1]["cache_control"] = marker
    return parts


def _pdf_part(block: dict[str, Any], source: dict[str, Any], where: str) -> dict[str, Any]:
    media_type = require_name(source.get("media_type"), f"{where}.source.media_type")
    if media_type != "application/pdf":
        raise unsupported(f"{where}.source.media_type", "A base64 document must be a PDF "
                          "(application/pdf); send other text as a text source.")
    data = require_name(source.get("data"), f"{where}.source.data")
    filename = optional_text(block.get("title"), f"{where}.title") or DEFAULT_PDF_NAME
    return {"type": "file",
            "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"}}


def _source_content_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts = []
    for k, block in enumerate(require_list(content, where, "a string or a list of text and "
                                           "image blocks")):
        place = f"{where}[{k}]"
        kind = _block(block, place).get("type")
        if kind not in ("text", "image"):
            raise invalid(f"{place}.type", f"{place} must be a text or image block.")
        parts.append(text_part(block, place) if kind == "text" else image_part(block, place))
    return parts


def tool_message(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A ``tool`` message for a ``tool_result`` block, and the image or file parts it cannot hold."""
    tool_use_id = require_name(block.get("tool_use_id"), f"{where}.tool_use_id")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise wrong_type(f"{where}.is_error", "true or false", is_error)
    content = block.get("content")
    carried: list[dict[str, Any]] = []
    if content is None or isinstance(content, str):
        text: str | list[dict[str, Any]] = content or ""
    else:
        text = []
        for k, item in enumerate(require_list(content, f"{where}.content",
                                              "a string or a list of content blocks")):
            place = f"{where}.content[{k}]"
            kind = _block(item, place).get("type")
            if kind == "text":
                text.append(text_part(item, place))
            elif kind in ("image", "document"):
                carried.extend(content_parts(item, place))
            else:
                raise _unsupported_block(kind, place)
        text = text or ""  # only images or documents: they follow in the next user message
    if is_error:
        text = _error_text(text)
    marker = cache_control_of(block, where)
    if marker is not None:
        text = [{"type": "text", "text": text}] if isinstance(text, str) else text
        text[-1]["cache_control"] = marker
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, carried


ERROR_PREFIX = "Error: "
"""What starts a failed tool result's text (``is_error: true``), Chat having no error flag."""


def _error_text(text: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(text, str):
        return ERROR_PREFIX + text
    return [{**text[0], "text": ERROR_PREFIX + text[0]["text"]}] + text[1:]


def assistant_message(content: Any, where: str) -> dict[str, Any]:
    """A Chat assistant message for an assistant turn: its text and its ``tool_calls``."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        place = f"{where}.content[{j}]"
        kind = _block(block, place).get("type")
        if kind == "text":
            texts.append(text_part(block, place))
        elif kind == "tool_use":
            calls.append(tool_call(block, place))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        elif kind == "tool_result":
            raise invalid(f"{place}.type", "tool_result blocks belong in user messages.")
        else:
            raise _unsupported_block(kind, place)
    message: dict[str, Any] = {"role": "assistant", "content": _assistant_text(texts, calls)}
    if calls:
        message["tool_calls"] = calls
    return message


def _assistant_text(texts: list[dict[str, Any]], calls: list[Any]) -> str | list[dict[str, Any]] | None:
    """One string (``None`` beside tool calls when there is no text), or parts if one is marked."""
    if any("cache_control" in part for part in texts):
        return texts
    if not texts:
        return None if calls else ""
    return "".join(part["text"] for part in texts)


def tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A Chat tool call for a ``tool_use`` block: ``input`` as the ``arguments`` JSON string."""
    given = block.get("input")
    arguments = require_object(given, f"{where}.input", "an object") if given is not None else {}
    return {
        "id": require_name(block.get("id"), f"{where}.id"),
        "type": "function",
        "function": {"name": require_name(block.get("name"), f"{where}.name"),
                     "arguments": compact_json(arguments)},
    }


def mark_last_part(messages: list[dict[str, Any]], marker: dict[str, Any]) -> None:
    """Put ``marker`` on the last part of the last message with content (automatic caching).

    A string content becomes one text part so it can carry the marker; a part
    that already has a marker keeps its own.
    """
    for message in reversed(messages):
        content = message.get("content")
        if isinstance(content, str) and content:
            message["content"] = [{"type": "text", "text": content, "cache_control": marker}]
            return
        if isinstance(content, list) and content:
            content[-1].setdefault("cache_control", marker)
            return


# =================================================================== the tools


def _copy_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    tools = [] if tools is None else require_list(tools, "tools", "a list of tool objects")
    if tools:
        out["tools"] = [function_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice, parallel = tool_choice_of(body.get("tool_choice"), bool(tools))
    if choice is not None:
        out["tool_choice"] = choice
    if parallel is not None:
        out["parallel_tool_calls"] = parallel


def function_tool(tool: Any, where: str) -> dict[str, Any]:
    """A Chat ``function`` tool for one custom Anthropic tool; a 400 naming the field otherwise."""
    tool = require_object(tool, where, "a tool object with name, description and input_schema")
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise unsupported(f"{where}.type", f"Tools of type {described(kind)} are Anthropic's own "
                          "server or built-in tools and cannot be sent to this model; send a "
                          "custom tool (name, description, input_schema).")
    callers = tool.get("allowed_callers")
    if callers is not None and "direct" not in require_list(callers, f"{where}.allowed_callers"):
        raise unsupported(f"{where}.allowed_callers", "Tools only Anthropic's code execution may "
                          "call cannot be sent to this model; allow 'direct' callers.")
    function: dict[str, Any] = {"name": require_name(tool.get("name"), f"{where}.name")}
    description = optional_text(tool.get("description"), f"{where}.description")
    if description:
        function["description"] = description
    function["parameters"] = require_object(tool.get("input_schema"), f"{where}.input_schema",
                                            "a JSON Schema object")
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise wrong_type(f"{where}.strict", "true or false", strict)
    if strict is not None:
        function["strict"] = strict
    return with_cache_control({"type": "function", "function": function}, tool, where)


_CHOICES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "auto": lambda choice: "auto",
    "any": lambda choice: "required",
    "none": lambda choice: "none",
    "tool": lambda choice: {"type": "function", "function": {
        "name": require_name(choice.get("name"), "tool_choice.name")}},
}


def tool_choice_of(choice: Any, has_tools: bool) -> tuple[Any, bool | None]:
    """Chat's ``tool_choice`` and ``parallel_tool_calls`` for Anthropic's ``tool_choice``.

    Without tools, ``auto`` and ``none`` mean nothing and are left out; ``any``
    and ``tool`` are a 400 (OpenAI refuses a choice without tools).
    """
    if choice is None:
        return None, None
    choice = require_object(choice, "tool_choice", "an object such as {\"type\": \"auto\"}")
    kind = choice.get("type")
    translate = _CHOICES.get(kind) if isinstance(kind, str) else None
    if translate is None:
        raise invalid("tool_choice.type", "tool_choice.type must be 'auto', 'any', 'tool' or "
                      f"'none', not {described(kind)}.")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise wrong_type("tool_choice.disable_parallel_tool_use", "true or false", disable)
    if not has_tools:
        if kind in ("auto", "none"):
            return None, None
        raise invalid("tool_choice", "tool_choice needs tools to choose from; send tools too.")
    return translate(choice), (False if disable and kind != "none" else None)


# ====================================================== thinking and output format


def _copy_output(body: dict[str, Any], out: dict[str, Any]) -> None:
    config = optional_object(body.get("output_config"), "output_config",
                             "an object such as {\"effort\": \"high\"}") or {}
    for key in config:
        if key not in ("effort", "format"):
            raise unsupported(f"output_config.{key}", f"output_config.{key} cannot be sent to "
                              "this model; output_config takes effort and format.")
    effort = reasoning_effort(body.get("thinking"), config.get("effort"))
    if effort is not None:
        out["reasoning_effort"] = effort
    if config.get("format") is not None:
        out["response_format"] = response_format(config["format"], "output_config.format")
    elif body.get("output_format") is not None:
        out["response_format"] = response_format(body["output_format"], "output_format")


def reasoning_effort(thinking: Any, effort: Any) -> str | None:
    """Chat's ``reasoning_effort`` for Anthropic's ``thinking`` and ``output_config.effort``."""
    if effort is not None:
        if effort not in EFFORTS:
            raise invalid("output_config.effort", "output_config.effort must be one of "
                          f"{', '.join(EFFORTS)}, not {described(effort)}.")
        return effort
    thinking = optional_object(thinking, "thinking", "an object such as "
                               "{\"type\": \"enabled\", \"budget_tokens\": 2048}")
    if thinking is None:
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_whole(budget) or not 1 <= budget <= MAX_COUNT:
            raise invalid("thinking.budget_tokens", "thinking.budget_tokens must be a whole "
                          "number of tokens (such as 2048), not "
                          f"{budget if is_number(budget) else described(budget)}.")
        return effort_for_budget(budget)
    if kind in ("disabled", "adaptive", "between_tools"):
        return None
    raise invalid("thinking.type", "thinking.type must be 'enabled', 'adaptive' or 'disabled', "
                  f"not {described(kind)}.")


def effort_for_budget(budget_tokens: int) -> str:
    """The ``reasoning_effort`` word for a thinking budget: ``low``, ``medium`` or ``high``."""
    if budget_tokens < LOW_EFFORT_BELOW:
        return "low"
    return "medium" if budget_tokens < MEDIUM_EFFORT_BELOW else "high"


def response_format(value: Any, where: str) -> dict[str, Any]:
    """A strict ``json_schema`` ``response_format`` for Anthropic's ``json_schema`` output format."""
    value = require_object(value, where, "an object such as {\"type\": \"json_schema\", "
                           "\"schema\": ...}")
    if value.get("type") != "json_schema":
        raise invalid(f"{where}.type", f"{where}.type must be 'json_schema', "
                      f"not {described(value.get('type'))}.")
    schema = require_object(value.get("schema"), f"{where}.schema", "a JSON Schema object")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}

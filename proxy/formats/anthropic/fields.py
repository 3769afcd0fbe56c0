"""Reading a caller's JSON body: typed accessors that refuse a wrong value with a 400 naming the field.

Both translation directions read documents a caller wrote, where any value
may have any JSON type. These helpers return the value when it has the type
the translation needs and otherwise raise :class:`GatewayError` (400,
``code: invalid_request``) whose ``param`` is the exact path of the field
(``messages[0].content[1].text``) and whose message says what to send.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import ErrorCode, GatewayError

_JSON_TYPE_NAMES = ((bool, "a boolean"), (int, "a number"), (float, "a number"),
                    (str, "a string"), (list, "a list"), (dict, "an object"))


def json_type_name(value: Any) -> str:
    """How a caller would name ``value``'s JSON type: ``a string``, ``an object``, ``null``..."""
    for kind, name in _JSON_TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def described(value: Any) -> str:
    """A short description of a caller's value for a message: ``'robot'``, ``a number``, ``null``."""
    return repr(value) if isinstance(value, str) and len(value) <= 40 else json_type_name(value)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (booleans are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def invalid(param: str, message: str) -> GatewayError:
    """A 400 ``invalid_request`` for a malformed field."""
    return GatewayError(400, message, code=ErrorCode.INVALID_REQUEST, param=param)


def unsupported(param: str, message: str) -> GatewayError:
    """A 400 ``unsupported_parameter`` for a well-formed field the other side cannot honour."""
    return GatewayError(400, message, code=ErrorCode.UNSUPPORTED_PARAMETER, param=param)


def wrong_type(where: str, expected: str, value: Any) -> GatewayError:
    """A 400 saying ``where`` must be ``expected`` and what it was instead."""
    return invalid(where, f"{where} must be {expected}, not {json_type_name(value)}.")


def require_object(value: Any, where: str, expected: str = "an object") -> dict[str, Any]:
    """``value`` if it is a JSON object, else a 400 naming ``where``."""
    if not isinstance(value, dict):
        raise wrong_type(where, expected, value)
    return value


def require_list(value: Any, where: str, expected: str = "a list") -> list[Any]:
    """``value`` if it is a JSON array, else a 400 naming ``where``."""
    if not isinstance(value, list):
        raise wrong_type(where, expected, value)
    return value


def optional_text(value: Any, where: str) -> str:
    """``value`` if it is a string, ``""`` if it is null or missing, else a 400 naming ``where``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise wrong_type(where, "a string", value)
    return value


def require_name(value: Any, where: str) -> str:
    """``value`` if it is a non-empty string (an id or a name), else a 400 naming ``where``."""
    if not isinstance(value, str):
        raise wrong_type(where, "a non-empty string", value)
    if not value:
        raise invalid(where, f"{where} must not be empty.")
    return value


def optional_object(value: Any, where: str, expected: str = "an object") -> dict[str, Any] | None:
    """``value`` if it is a JSON object, ``None`` if null or missing, else a 400 naming ``where``."""
    return None if value is None else require_object(value, where, expected)


def cache_control_of(part: dict[str, Any], where: str) -> dict[str, Any] | None:
    """A block's or part's ``cache_control`` marker, kept exactly as the caller set it.

    ``None`` when there is none; a 400 naming ``{where}.cache_control`` (the
    top-level ``cache_control`` when ``where`` is empty) when it
    is not an object (Anthropic's own ``{"type": "ephemeral", "ttl": "1h"}`` shape
    is not checked further: the upstream that honours it judges it).
    """
    param = f"{where}.cache_control" if where else "cache_control"
    return optional_object(part.get("cache_control"), param,
                           "an object such as {\"type\": \"ephemeral\"}")


def with_cache_control(block: dict[str, Any], part: dict[str, Any], where: str) -> dict[str, Any]:
    """``block`` carrying ``part``'s ``cache_control`` marker, if it has one."""
    marker = cache_control_of(part, where)
    if marker is not None:
        block["cache_control"] = marker
    return block

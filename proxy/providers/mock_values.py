"""Example values for JSON Schemas: what the mock provider puts in tool arguments and JSON answers.

:func:`example_value` builds, from a JSON Schema, one value that is valid
against it for the keywords models are asked to follow in practice: ``type``
(a list of types too), ``properties``, ``required``, ``additionalProperties``,
``items``/``prefixItems``, ``enum``, ``const``, ``anyOf``/``oneOf`` (the first
branch), ``allOf`` (merged), ``$ref`` into ``$defs``/``definitions`` (as
pydantic emits them), the bounds of numbers, strings, arrays and objects, and
the usual string ``format`` values. Keywords it cannot honour (``pattern``,
``not``, ``if``/``then``) are ignored, so the value may break those.

The value is deterministic: the same schema and ``seed`` give the same value,
and other seeds give other values (where the schema leaves any choice).
Recursion is bounded: past ``max_depth`` nested objects and arrays only what
is required is generated (no optional properties, the fewest array items, the
``null`` branch of a union when there is one).
"""

from __future__ import annotations

import datetime
import math
import random
import uuid
from typing import Any

DEFAULT_MAX_DEPTH = 6
_HARD_LIMIT = 16  # beyond max_depth + this, give up and answer None (a schema that cannot end)

_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")
_OBJECT_KEYWORDS = ("properties", "required", "additionalProperties", "minProperties", "patternProperties")
_ARRAY_KEYWORDS = ("items", "prefixItems", "minItems", "maxItems", "contains")
_STRING_KEYWORDS = ("minLength", "maxLength", "format", "pattern")
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_EPOCH = datetime.date(2024, 1, 1)


def example_value(schema: Any, seed: str | int = 0, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """A value valid against ``schema`` (a JSON Schema as a dict or a bool), the same for the same ``seed``."""
    return _Generator(schema, random.Random(f"mock-values:{seed}"), max_depth).value(schema, "value", 0)


def example_object(schema: Any, seed: str | int = 0, *, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """Like :func:`example_value`, for where a JSON object is needed (tool arguments).

    A schema that does not describe an object (or none at all) gives ``{}``.
    """
    if not isinstance(schema, dict) or not schema:
        return {}
    value = example_value(schema, seed, max_depth=max_depth)
    return value if isinstance(value, dict) else {}


def schema_type(schema: dict[str, Any]) -> str | None:
    """The type to generate for ``schema``: its ``type`` (the first non-null of a list), else inferred."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        return next((k for k in _TYPE_ORDER if k in kinds and k != "null"), "null" if "null" in kinds else None)
    if any(k in schema for k in _OBJECT_KEYWORDS):
        return "object"
    if any(k in schema for k in _ARRAY_KEYWORDS):
        return "array"
    if any(k in schema for k in _STRING_KEYWORDS):
        return "string"
    if any(k in schema for k in _NUMBER_KEYWORDS):
        return "number"
    return None


def resolve_ref(root: Any, ref: str) -> Any:
    """The schema a local ``$ref`` (``#``, ``#/$defs/Name``, ``#/definitions/Name``, any JSON pointer) names.

    ``None`` when it names nothing in ``root`` (remote references included).
    """
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``allOf`` branches folded in (properties and required joined, the rest overlaid)."""
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for branch in schema.get("allOf") or ():
        if not isinstance(branch, dict):
            continue
        for key, value in branch.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**(merged.get("properties") or {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = list(dict.fromkeys([*(merged.get("required") or []), *value]))
            elif key not in merged:
                merged[key] = value
    return merged


class _Generator:
    """One walk over a schema; ``rng`` makes the choices, in walk order, so the value is reproducible."""

    def __init__(self, root: Any, rng: random.Random, max_depth: int) -> None:
        self.root = root
        self.rng = rng
        self.max_depth = max_depth
        self.active: list[str] = ["#"]  # the definitions being generated, outermost first

    def value(self, schema: Any, hint: str, depth: int, hops: int = 0) -> Any:
        """A value for ``schema``; ``depth`` counts nested objects and arrays, ``hops`` unions in a row."""
        if depth > self.max_depth + _HARD_LIMIT or hops > _HARD_LIMIT:
            return None
        if schema is True or schema is None:
            return self.string({}, hint)
        if not isinstance(schema, dict):
            return None
        entered: list[str] = []
        while isinstance(schema.get("$ref"), str) and len(entered) < _HARD_LIMIT:
            ref = schema["$ref"]
            target = resolve_ref(self.root, ref)
            if target is False:
                return None
            if not isinstance(target, dict):
                break
            if ref in self.active:  # a definition inside itself: only what is required, from here on
                depth = max(depth, self.max_depth)
            entered.append(ref)
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        if not entered:
            return self.build(schema, hint, depth, hops)
        self.active.extend(entered)
        try:
            return self.build(schema, hint, depth, hops)
        finally:
            del self.active[-len(entered):]

    def build(self, schema: dict[str, Any], hint: str, depth: int, hops: int) -> Any:
        """A value for ``schema``, its own ``$ref`` already resolved."""
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[self.rng.randrange(len(enum))]
        if "allOf" in schema:
            schema = merge_all_of(schema)
        for union in ("anyOf", "oneOf"):
            branches = schema.get(union)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                branch = self.pick_branch(branches, depth)
                if isinstance(branch, dict) and _siblings_apply(rest):
                    branch = merge_all_of({**rest, "allOf": [branch]})
                return self.value(branch, hint, depth, hops + 1)
        title = schema.get("title")
        if hint == "value" and isinstance(title, str) and title:
            hint = title
        kind = schema_type(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, hint, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        if "default" in schema:
            return schema["default"]
        return self.string(schema, hint)

    def pick_branch(self, branches: list[Any], depth: int) -> Any:
        """The first branch, unless it recurses into a definition being generated or ``max_depth`` is reached.

        Then the first branch that is ``null``, else the first that does not recurse, else the first.
        """
        first = branches[0]
        recursing = isinstance(first, dict) and first.get("$ref") in self.active
        if depth < self.max_depth and not recursing:
            return first
        for branch in branches:
            if isinstance(branch, dict) and (branch.get("type") == "null" or
                                             ("const" in branch and branch["const"] is None)):
                return branch
        for branch in branches:
            if not (isinstance(branch, dict) and branch.get("$ref") in self.active):
                return branch
        return first

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [r for r in schema.get("required") or () if isinstance(r, str)]
        extra = schema.get("additionalProperties", True)
        deep = depth >= self.max_depth
        result: dict[str, Any] = {}
        limit = schema.get("maxProperties")
        limit = limit if isinstance(limit, int) and limit >= len(required) else math.inf
        for name in required:
            result[name] = self.value(properties.get(name, extra if isinstance(extra, dict) else {}),
                                      name, depth + 1)
        if not deep:
            for name, sub in properties.items():
                if name not in result and len(result) < limit:
                    result[name] = self.value(sub, name, depth + 1)
        wanted = schema.get("minProperties")
        wanted = wanted if isinstance(wanted, int) else 0
        if not properties and isinstance(extra, dict) and not deep and extra:
            wanted = max(wanted, 1)  # a dict[str, X]: one entry shows its shape
        if extra is not False:
            number = 1
            while len(result) < min(wanted, limit):
                key = f"key{number}"
                if key not in result:
                    result[key] = self.value(extra if isinstance(extra, dict) else {}, key, depth + 1)
                number += 1
        return result

    def array(self, schema: dict[str, Any], hint: str, depth: int) -> list[Any]:
        low = schema.get("minItems")
        low = low if isinstance(low, int) and low > 0 else 0
        high = schema.get("maxItems")
        high = high if isinstance(high, int) and high >= low else None
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        if isinstance(items, list):  # the tuple form of drafts 4 to 7
            prefix, items = items, schema.get("additionalItems", {})
        prefix = prefix if isinstance(prefix, list) else []
        count = low if depth >= self.max_depth else max(low, 1, len(prefix))
        if items is False:
            count = min(count, len(prefix))
        if high is not None:
            count = min(count, high)
        item_hint = hint[:-1] if hint.endswith("s") and not hint.endswith("ss") and len(hint) > 1 else hint
        unique = schema.get("uniqueItems") is True
        result: list[Any] = []
        for position in range(count):
            sub = prefix[position] if position < len(prefix) else items
            value = self.value(sub if sub is not None else {}, item_hint, depth + 1)
            tries = 0
            while unique and value in result and tries < 8:
                value = self.value(sub if sub is not None else {}, item_hint, depth + 1)
                tries += 1
            if unique and value in result:
                break
            result.append(value)
        return result

    def integer(self, schema: dict[str, Any]) -> int:
        low, high = _bounds(schema)
        step = schema.get("multipleOf")
        step = step if isinstance(step, int) and not isinstance(step, bool) and step > 0 else 1
        first, last = _span(math.ceil(low) if low is not None else None,
                            math.floor(high) if high is not None else None, (1, 100))
        first, last = -(-first // step) * step, last // step * step
        if first > last:
            return first  # no integer meets the bounds: the nearest try
        return first + step * self.rng.randint(0, (last - first) // step)

    def number(self, schema: dict[str, Any]) -> float | int:
        low, high = _bounds(schema)
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
            return self.multiple(low, high, step)
        low, high = _span(low, high, (0.0, 100.0))
        if high <= low:
            return low
        value = round(low + (high - low) * (0.05 + 0.9 * self.rng.random()), 2)
        if not low <= value <= high:
            value = (low + high) / 2
        if value == int(value) and low <= value + 0.25 <= high:
            value += 0.25  # not an integer, so that a oneOf of number and integer has one match
        return value

    def multiple(self, low: float | None, high: float | None, step: float) -> float | int:
        """A multiple of ``step`` in the bounds whose quotient by ``step`` is exact in floating point."""
        first = math.ceil(low / step) if low is not None else None
        last = math.floor(high / step) if high is not None else None
        if first is None and last is None:
            first, last = 1, 100
        elif first is None:
            first = last - 100
        elif last is None:
            last = first + 100
        if first > last:
            return first * step
        start = self.rng.randint(first, last)
        if isinstance(step, int):
            return start * step
        for k in (start, *range(first, min(last, first + 50) + 1)):
            value = round(k * step, 12)
            if (value / step).is_integer():
                return value
        return 0 if first <= 0 <= last else round(first * step, 12)

    def string(self, schema: dict[str, Any], hint: str) -> str:
        text = _formatted(schema.get("format"), hint, self.rng)
        if text is None:
            text = f"{hint}-{self.rng.randrange(100, 1000)}"
        low = schema.get("minLength")
        high = schema.get("maxLength")
        if isinstance(low, int) and len(text) < low:
            text += "x" * (low - len(text))
        if isinstance(high, int) and high >= 0 and len(text) > high:
            text = text[:high]
        return text


def _siblings_apply(rest: dict[str, Any]) -> bool:
    """Whether keywords beside an ``anyOf`` constrain the value (not just ``title``, ``default``...)."""
    return any(k not in ("title", "description", "default", "examples", "$defs", "definitions") for k in rest)


def _bounds(schema: dict[str, Any]) -> tuple[float | None, float | None]:
    """The lowest and highest value allowed, from both inclusive and exclusive bounds (exclusive nudged)."""
    low = _number(schema.get("minimum"))
    high = _number(schema.get("maximum"))
    ex_low = _number(schema.get("exclusiveMinimum"))
    ex_high = _number(schema.get("exclusiveMaximum"))
    if ex_low is not None and (low is None or ex_low >= low):
        low = ex_low + _nudge(ex_low)
    if ex_high is not None and (high is None or ex_high <= high):
        high = ex_high - _nudge(ex_high)
    if isinstance(schema.get("exclusiveMinimum"), bool) and schema["exclusiveMinimum"] and low is not None:
        low += _nudge(low)  # draft 4's boolean form
    if isinstance(schema.get("exclusiveMaximum"), bool) and schema["exclusiveMaximum"] and high is not None:
        high -= _nudge(high)
    return low, high


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _nudge(value: float) -> float:
    return max(1e-6, abs(value) * 1e-9)


def _formatted(fmt: Any, hint: str, rng: random.Random) -> str | None:
    """A plausible string of format ``fmt``, or ``None`` for no format (or one not known)."""
    if not isinstance(fmt, str):
        return None
    day = _EPOCH + datetime.timedelta(days=rng.randrange(366))
    if fmt == "date":
        return day.isoformat()
    if fmt == "date-time":
        return f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"
    if fmt == "time":
        return f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"
    if fmt == "duration":
        return f"PT{rng.randrange(1, 60)}M"
    name = "".join(c for c in hint.lower() if c.isalnum()) or "user"
    if fmt in ("email", "idn-email"):
        return f"{name}{rng.randrange(1, 100)}@example.com"
    if fmt in ("uri", "url", "iri", "uri-reference", "iri-reference"):
        return f"https://example.com/{name}/{rng.randrange(1, 1000)}"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if fmt in ("hostname", "idn-hostname"):
        return f"{name}.example.com"
    if fmt == "ipv4":
        return f"192.0.2.{rng.randrange(1, 255)}"
    if fmt == "ipv6":
        return f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
    return None


def _span(low: Any, high: Any, default: tuple[Any, Any]) -> tuple[Any, Any]:
    """Both ends of a range: a missing end lies 100 from the other; with neither, ``default``."""
    if low is None and high is None:
        return default
    if low is None:
        return high - 100, high
    if high is None:
        return low, low + 100
    return low, high

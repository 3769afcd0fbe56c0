"""Typed accessors for a caller's JSON: a wrong value is a 400 naming the field and saying what to send."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from proxy.errors import GatewayError
from proxy.formats.anthropic.fields import (
    cache_control_of,
    json_type_name,
    optional_text,
    require_list,
    require_name,
    require_object,
)


@pytest.mark.parametrize("value,name", [
    (True, "a boolean"), (3, "a number"), (2.5, "a number"), ("x", "a string"), ([], "a list"),
    ({}, "an object"), (None, "null"),
])
def test_json_type_names(value: Any, name: str) -> None:
    assert json_type_name(value) == name


@pytest.mark.parametrize("read,value,message", [
    (require_object, [1], "tools[0] must be an object, not a list."),
    (require_list, {"a": 1}, "tools[0] must be a list, not an object."),
    (optional_text, 5, "tools[0] must be a string, not a number."),
    (require_name, None, "tools[0] must be a non-empty string, not null."),
    (require_name, "", "tools[0] must not be empty."),
])
def test_a_wrong_value_is_a_400_naming_the_field(read: Callable[..., Any], value: Any, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        read(value, "tools[0]")
    assert (caught.value.status, caught.value.param, caught.value.message) == (400, "tools[0]", message)


def test_a_right_value_is_returned_as_it_is() -> None:
    schema = {"type": "object"}
    assert require_object(schema, "x") is schema and optional_text(None, "x") == ""


@pytest.mark.parametrize("where,param", [("messages[0].content[1]", "messages[0].content[1].cache_control"),
                                         ("", "cache_control")])
def test_a_marker_that_is_not_an_object_names_its_place(where: str, param: str) -> None:
    assert cache_control_of({}, where) is None
    with pytest.raises(GatewayError) as caught:
        cache_control_of({"cache_control": "ephemeral"}, where)
    assert caught.value.param == param

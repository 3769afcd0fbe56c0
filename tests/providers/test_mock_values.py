"""Example values from JSON Schemas (the mock's tool arguments and JSON answers), checked by jsonschema."""

from __future__ import annotations

import datetime
import enum
import re
import uuid
from typing import Literal, Optional, Union
from urllib.parse import urlparse

import jsonschema
import pytest
from pydantic import BaseModel, Field

from proxy.providers.mock_values import (
    example_object,
    example_value,
    resolve_ref,
    schema_type,
)

SEEDS = range(12)


def assert_valid(schema, value) -> None:
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)


SCHEMAS = {
    "weather tool": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"},
                       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                       "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "unit"], "additionalProperties": False,
    },
    "type lists and nulls": {
        "type": "object",
        "properties": {"a": {"type": ["string", "null"]}, "b": {"type": ["null", "integer"]},
                       "c": {"type": "null"}, "d": {"type": ["boolean"]}},
        "required": ["a", "b", "c", "d"],
    },
    "nested objects and arrays": {
        "type": "object",
        "properties": {"order": {"type": "object", "required": ["lines"], "properties": {
            "lines": {"type": "array", "minItems": 2, "maxItems": 3, "items": {
                "type": "object", "required": ["sku", "qty"], "additionalProperties": False,
                "properties": {"sku": {"type": "string", "minLength": 12, "maxLength": 12},
                               "qty": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3}}}}}}},
        "required": ["order"],
    },
    "formats": {
        "type": "object",
        "properties": {f: {"type": "string", "format": f} for f in
                       ("date", "date-time", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname")},
        "required": ["date", "date-time", "email", "uri", "uuid"],
    },
    "numbers": {
        "type": "object",
        "properties": {"ratio": {"type": "number", "minimum": 0, "maximum": 1},
                       "tight": {"type": "number", "exclusiveMinimum": 2.5, "exclusiveMaximum": 2.6},
                       "price": {"type": "number", "multipleOf": 0.25, "minimum": 10, "maximum": 11},
                       "even": {"type": "integer", "multipleOf": 2, "minimum": 7, "maximum": 13},
                       "negative": {"type": "integer", "maximum": -5},
                       "huge": {"type": "integer", "minimum": 10 ** 12},
                       "exact": {"type": "integer", "minimum": 4, "maximum": 4}},
        "required": ["ratio", "tight", "price", "even", "negative", "huge", "exact"],
    },
    "const, enum, anyOf, oneOf": {
        "type": "object",
        "properties": {"kind": {"const": "search"},
                       "level": {"enum": [1, "two", None, 3.5]},
                       "either": {"anyOf": [{"type": "integer", "minimum": 5}, {"type": "string"}]},
                       "one": {"oneOf": [{"type": "number"}, {"type": "integer"}]}},
        "required": ["kind", "level", "either", "one"],
    },
    "allOf merged": {
        "allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                  {"properties": {"b": {"type": "integer", "minimum": 3}}, "required": ["b"]}],
    },
    "dict of arrays, minProperties": {
        "type": "object", "minProperties": 2,
        "additionalProperties": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
    },
    "unique items": {
        "type": "array", "uniqueItems": True, "minItems": 3,
        "items": {"type": "string", "enum": ["a", "b", "c", "d"]},
    },
    "tuple (prefixItems)": {
        "type": "array", "prefixItems": [{"type": "string", "format": "date"}, {"type": "boolean"}],
        "items": False,
    },
    "draft-07 definitions": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"point": {"type": "object", "required": ["x", "y"],
                                  "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}},
        "type": "object", "required": ["from", "to", "pair"],
        "properties": {"from": {"$ref": "#/definitions/point"}, "to": {"$ref": "#/definitions/point"},
                       "pair": {"type": "array", "items": [{"type": "integer"}, {"type": "string"}],
                                "additionalItems": False, "minItems": 2}},
    },
    "no type, inferred": {
        "properties": {"name": {"minLength": 3}, "size": {"minimum": 2, "maximum": 3},
                       "list": {"items": {"type": "integer"}, "minItems": 1}},
        "required": ["name", "size", "list"],
    },
    "empty and boolean sub-schemas": {
        "type": "object", "properties": {"any": {}, "yes": True}, "required": ["any", "yes"],
    },
    "a scalar at the root": {"type": "string", "format": "email", "maxLength": 40},
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_values_are_valid_for_every_seed(name: str) -> None:
    schema = SCHEMAS[name]
    for seed in SEEDS:
        assert_valid(schema, example_value(schema, seed))


def test_formats_are_plausible() -> None:
    value = example_value(SCHEMAS["formats"], "plausible")
    datetime.date.fromisoformat(value["date"])
    datetime.datetime.fromisoformat(value["date-time"].replace("Z", "+00:00"))
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", value["email"])
    assert urlparse(value["uri"]).scheme == "https" and urlparse(value["uri"]).netloc
    assert uuid.UUID(value["uuid"]).version == 4


def test_same_seed_same_value_other_seeds_other_values() -> None:
    schema = SCHEMAS["weather tool"]
    assert example_value(schema, "a") == example_value(schema, "a")
    assert len({str(example_value(schema, seed)) for seed in SEEDS}) > 6


def test_optional_properties_are_filled_and_strings_name_their_property() -> None:
    value = example_value(SCHEMAS["weather tool"], 1)
    assert set(value) == {"city", "unit", "days"}
    assert value["city"].startswith("city")


class Priority(str, enum.Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    street: str
    city: str = Field(min_length=2, max_length=40)
    postcode: Optional[str] = None


class Contact(BaseModel):
    id: uuid.UUID
    name: str
    email: str = Field(json_schema_extra={"format": "email"})
    addresses: list[Address] = Field(min_length=1)
    age: Optional[int] = Field(default=None, ge=0, le=130)


class Cat(BaseModel):
    pet_type: Literal["cat"]
    meows: int = Field(ge=1)


class Dog(BaseModel):
    pet_type: Literal["dog"]
    barks: float = Field(gt=0, lt=10)


class Ticket(BaseModel):
    title: str = Field(max_length=80)
    priority: Priority
    due: datetime.date
    opened: datetime.datetime
    owner: Contact
    watchers: list[Contact] = []
    labels: dict[str, int] = {}
    pet: Union[Cat, Dog] = Field(discriminator="pet_type")
    score: float = Field(ge=0, le=1)
    parent: Optional["Ticket"] = None


def test_a_pydantic_schema_with_defs_validates_both_ways() -> None:
    schema = Ticket.model_json_schema()
    assert "$defs" in schema  # nested models, the enum and the recursion are references
    for seed in SEEDS:
        value = example_value(schema, seed)
        assert_valid(schema, value)
        ticket = Ticket.model_validate(value)
        assert ticket.owner.addresses


def test_recursion_is_bounded() -> None:
    schema = Ticket.model_json_schema()
    value = example_value(schema, 0)
    assert_valid(schema, value)
    assert value["parent"] is None  # an optional field that recurses is left null
    deep = example_value(SCHEMAS["nested objects and arrays"], 0, max_depth=1)
    assert_valid(SCHEMAS["nested objects and arrays"], deep)
    assert set(deep["order"]) == {"lines"} and len(deep["order"]["lines"]) == 2  # only what is required
    tree = {"$defs": {"node": {"type": "object", "required": ["children"], "properties": {
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}, "$ref": "#/$defs/node"}
    value = example_value(tree, 0)
    assert_valid(tree, value)
    assert value == {"children": [{"children": []}]}


def test_schemas_that_cannot_end_still_return() -> None:
    example_value({"$ref": "#"}, 0)  # returns at all: no endless loop
    looping = {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}
    example_value(looping, 0)
    required_forever = {"type": "object", "required": ["me"], "properties": {"me": {"$ref": "#"}}}
    value = example_value(required_forever, 0)
    depth = 0
    while isinstance(value, dict):
        value, depth = value.get("me"), depth + 1
    assert depth < 40


def test_example_object_is_always_an_object() -> None:
    assert example_object(None) == {}
    assert example_object({}) == {}
    assert example_object({"type": "string"}) == {}
    assert example_object({"type": "object", "properties": {}}) == {}
    assert set(example_object(SCHEMAS["weather tool"])) == {"city", "unit", "days"}


def test_helpers() -> None:
    assert schema_type({"type": ["null", "string"]}) == "string"
    assert schema_type({"type": ["null"]}) == "null"
    assert schema_type({"required": ["a"]}) == "object"
    assert schema_type({"maximum": 3}) == "number"
    assert schema_type({}) is None
    root = {"$defs": {"a/b": {"type": "integer"}}, "definitions": {"x": {"type": "string"}}}
    assert resolve_ref(root, "#/$defs/a~1b") == {"type": "integer"}
    assert resolve_ref(root, "#/definitions/x") == {"type": "string"}
    assert resolve_ref(root, "#/definitions/missing") is None
    assert resolve_ref(root, "other.json#/x") is None

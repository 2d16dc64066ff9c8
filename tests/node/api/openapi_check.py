"""Real responses judged against the OpenAPI description the node serves: :func:`check` is a checker
for the JSON Schema subset the description uses, :func:`response_schema` the schema of one answer."""

from __future__ import annotations

import re
from typing import Any

from node.api.openapi import build_openapi

DOC = build_openapi("county-a")


def resolve(ref: str) -> Any:
    node: Any = DOC
    for key in ref.removeprefix("#/").split("/"):
        node = node[key]
    return node


def check(value: Any, schema: dict, where: str = "$") -> None:
    """A checker for the JSON Schema subset the description uses (raises AssertionError)."""
    if "$ref" in schema:
        return check(value, resolve(schema["$ref"]), where)
    if "oneOf" in schema:
        matches, reasons = 0, []
        for option in schema["oneOf"]:
            try:
                check(value, option, where)
                matches += 1
            except AssertionError as exc:
                reasons.append(str(exc))
        assert matches == 1, f"{where}: matches {matches} of oneOf ({'; '.join(reasons)[:500]})"
        return None
    for sub in schema.get("allOf", []):
        check(value, sub, where)
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an integer"
        assert value >= schema.get("minimum", value), f"{where}: {value} below minimum"
    elif kind:
        assert isinstance(value, types[kind]), f"{where}: {value!r} is not {kind}"
    if schema.get("format") == "date-time":
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)", value), f"{where}: {value!r}"
    if kind == "object":
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                check(value[key], sub, f"{where}.{key}")
        extra = schema.get("additionalProperties")
        if extra is False:
            unknown = set(value) - set(schema.get("properties", {}))
            assert not unknown, f"{where}: properties {sorted(unknown)} not allowed"
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in schema.get("properties", {}):
                    check(item, extra, f"{where}.{key}")
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{where}[{i}]")
    return None


def response_schema(path: str, method: str, status: int) -> dict:
    content = DOC["paths"][path][method]["responses"][str(status)]["content"]
    return content["application/json"]["schema"]

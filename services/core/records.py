"""Convert API records (JSON dicts) to and from the typed Avro record types, losing nothing.

The Avro record types in ``schemas/`` name the fields Tether knows (``tether.poweroffice.Employee``,
``Customer``, ``ContactPerson``, ``tether.wix.Contact`` and their nested records). Every field an
API returns that a type does not name is kept, as JSON, in that record's ``unknown_fields``;
``to_api`` puts it back, so a record survives Kafka byte-for-byte in meaning.

Bad input is a :class:`ContractError` naming the type and the field (wrong type, missing
required ``Id``/``id``) — the extractor turns it into a dead letter.

Imports: standard library and fastavro only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import fastavro.schema

from services.core.codec import DEFAULT_SCHEMAS_DIR
from services.core.errors import ContractError

UNKNOWN_FIELDS = "unknown_fields"

#: (system, resource) -> Avro full name of the record type carrying it
#: (``ResourceDescriptor.record_type``). Empty until the wiring installs the connectors'
#: descriptors (``services.core.registry.install``); filled in place.
RECORD_TYPES: dict[tuple[str, str], str] = {}

Schema = Any


@cache
def _named_types(type_name: str, schemas_dir: Path = DEFAULT_SCHEMAS_DIR) -> dict[str, Schema]:
    """All named types reachable from ``type_name``, each by full name (definitions, not refs)."""
    parsed = fastavro.schema.load_schema(str(schemas_dir / f"{type_name}.avsc"), _write_hint=False)
    found: dict[str, Schema] = {}

    def walk(node: Schema) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "enum") and "name" in node:
                found.setdefault(node["name"], node)
            for field in node.get("fields", []):
                walk(field["type"])
            if node.get("type") == "array":
                walk(node["items"])
            if node.get("type") == "map":
                walk(node["values"])

    walk(parsed)
    return found


def _resolve(types: dict[str, Schema], node: Schema) -> Schema:
    return types.get(node, node) if isinstance(node, str) else node


def _convert(types: dict[str, Schema], schema: Schema, value: Any, where: str) -> Any:
    """API JSON value -> Avro datum for ``schema`` (a resolved node)."""
    schema = _resolve(types, schema)
    if isinstance(schema, list):  # union: only ["null", T] occurs in record types
        if value is None:
            if "null" not in schema:
                raise ContractError(f"{where}: required value is missing")
            return None
        branches = [b for b in schema if b != "null"]
        return _convert(types, branches[0], value, where)
    kind = schema if isinstance(schema, str) else schema.get("type")
    if isinstance(kind, dict | list):
        return _convert(types, kind, value, where)
    if value is None and kind != "null":
        raise ContractError(f"{where}: required value is missing")
    if kind == "record":
        return _record_to_avro(types, schema, value, where)
    if kind == "array":
        if not isinstance(value, list):
            raise ContractError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(types, schema["items"], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "string":
        if not isinstance(value, str):
            raise ContractError(f"{where}: expected a string, got {type(value).__name__}")
        return value
    if kind in ("long", "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ContractError(f"{where}: expected an integer, got {type(value).__name__}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ContractError(f"{where}: expected true/false, got {type(value).__name__}")
        return value
    if kind == "null":
        return None
    raise ContractError(f"{where}: unsupported schema type {kind!r}")


def _record_to_avro(types: dict[str, Schema], schema: Schema, value: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise ContractError(f"{where}: expected an object, got {type(value).__name__}")
    datum: dict[str, Any] = {}
    known = set()
    for field in schema["fields"]:
        name = field["name"]
        if name == UNKNOWN_FIELDS:
            continue
        known.add(name)
        datum[name] = _convert(types, field["type"], value.get(name), f"{where}.{name}")
    unknown = {k: v for k, v in value.items() if k not in known}
    if any(f["name"] == UNKNOWN_FIELDS for f in schema["fields"]):
        datum[UNKNOWN_FIELDS] = json.dumps(unknown, ensure_ascii=False, sort_keys=True)
    return datum


Reader = Any  # Callable[[Any], Any]: an Avro datum (never None) -> its API JSON value


def _compile_to_api(types: dict[str, Schema], schema: Schema) -> Reader | None:
    """The converter of one schema node, built once per type (``None``: the value as it is).

    Same rules as walking the schema per datum: a union converts by its first non-null branch,
    a record drops ``unknown_fields`` into the result and keeps a field that is present (even
    as null), an array converts each item; everything else is returned as it is.
    """
    schema = _resolve(types, schema)
    if isinstance(schema, list):
        return _compile_to_api(types, next(b for b in schema if b != "null"))
    kind = schema if isinstance(schema, str) else schema.get("type")
    if isinstance(kind, dict | list):
        return _compile_to_api(types, kind)
    if kind == "record":
        return _record_reader(types, schema)
    if kind == "array":
        item = _compile_to_api(types, schema["items"])
        if item is None:
            return list
        return lambda datum: [None if v is None else item(v) for v in datum]
    return None


def _record_reader(types: dict[str, Schema], schema: Schema) -> Reader:
    building = _READERS_BUILDING.get(id(schema))
    if building is not None:  # a recursive type reaches itself: use the one being built
        return lambda datum: building[0](datum)
    fields: list[tuple[str, Reader | None]] = []

    def read(datum: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, convert in fields:
            value = datum.get(name)
            if value is not None:
                out[name] = value if convert is None else convert(value)
            elif name in datum:
                out[name] = None
        unknown = datum.get(UNKNOWN_FIELDS)
        if unknown and unknown != "{}":  # "{}": the usual case, nothing to parse
            out.update(json.loads(unknown))
        return out

    _READERS_BUILDING[id(schema)] = [read]
    try:
        for field in schema["fields"]:
            if field["name"] != UNKNOWN_FIELDS:
                fields.append((field["name"], _compile_to_api(types, field["type"])))
    finally:
        del _READERS_BUILDING[id(schema)]
    return read


_READERS_BUILDING: dict[int, list[Reader]] = {}


@cache
def _api_reader(type_name: str) -> Reader:
    types = _named_types(type_name)
    reader = _compile_to_api(types, types[type_name])
    assert reader is not None
    return reader


def to_avro(type_name: str, api_record: Mapping[str, Any]) -> dict[str, Any]:
    """API record -> Avro datum of ``type_name``. Raises :class:`ContractError` on bad input."""
    types = _named_types(type_name)
    result = _convert(types, types[type_name], api_record, type_name.rsplit(".", 1)[-1])
    assert isinstance(result, dict)
    return result


def to_api(type_name: str, datum: Mapping[str, Any]) -> dict[str, Any]:
    """Avro datum of ``type_name`` -> the API record it was made from (unknown fields restored).

    Fields that were absent in the API record come back as ``None``.
    """
    result = _api_reader(type_name)(datum)
    assert isinstance(result, dict)
    return result


def record_type_for(system: str, resource: str) -> str:
    try:
        return RECORD_TYPES[(system, resource)]
    except KeyError:
        raise ContractError(f"no record type for {system}/{resource}") from None


def wrap_record(system: str, resource: str, api_record: Mapping[str, Any]) -> tuple[str, Any]:
    """API record -> the ``(full_name, datum)`` union branch used in messages."""
    type_name = record_type_for(system, resource)
    return (type_name, to_avro(type_name, api_record))


def unwrap_record(branch: Any) -> tuple[str, dict[str, Any]] | None:
    """A decoded union branch ``(full_name, datum)`` -> ``(full_name, api_record)``; None stays."""
    if branch is None:
        return None
    type_name, datum = branch
    return type_name, to_api(type_name, datum)

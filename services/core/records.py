"""Convert API records (JSON dicts) to and from the typed Avro record types, losing nothing.

The Avro record types in ``schemas/`` name the fields Tether knows (``tether.poweroffice.Employee``,
``Customer``, ``ContactPerson``, ``tether.wix.Contact`` and their nested records). Every field an
API returns that a type does not name is kept, as JSON, in that record's ``unknown_fields``;
``to_api`` puts it back, so a record survives Kafka byte-for-byte in meaning.

Bad input is a :class:`ContractError` naming the type and the field (wrong type, missing
required ``Id``/``id``) — the extractor turns it into a dead letter.

``to_avro`` runs for every record the extractor reads: each record type is compiled once into
nested converter functions (no schema walk per record), and the path named by an error is built
only when a value does not fit.

Imports: standard library and fastavro only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
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


class _MisfitError(Exception):
    """A value that does not fit its schema: the message, and the path to it (``.field``,
    ``[index]``, innermost first), added on the way out so that a fitting record builds none."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


_UNKNOWN_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
"""``json.dumps(..., ensure_ascii=False, sort_keys=True)`` without a new encoder per call."""

Converter = Callable[[Any], Any]
"""API JSON value -> Avro datum of one schema node (raises ``_MisfitError``)."""


def _missing() -> _MisfitError:
    return _MisfitError("required value is missing")


def _misfit(expected: str, value: Any) -> _MisfitError:
    return _MisfitError(f"expected {expected}, got {type(value).__name__}")


def _compile(types: dict[str, Schema], schema: Schema, records: dict[int, Converter]) -> Converter:
    """The converter of ``schema`` (``records``: those of the record types compiled so far, by
    node, so a type that refers to itself ends)."""
    schema = _resolve(types, schema)
    if isinstance(schema, list):  # union: only ["null", T] occurs in record types
        nullable = "null" in schema
        branch = _compile(types, next(b for b in schema if b != "null"), records)

        def union(value: Any) -> Any:
            if value is None:
                if not nullable:
                    raise _missing()
                return None
            return branch(value)

        return union
    kind = schema if isinstance(schema, str) else schema.get("type")
    if isinstance(kind, dict | list):
        return _compile(types, kind, records)
    if kind == "record":
        return records.get(id(schema)) or _compile_record(types, schema, records)
    if kind == "array":
        items = _compile(types, schema["items"], records)

        def array(value: Any) -> Any:
            if value is None:
                raise _missing()
            if not isinstance(value, list):
                raise _misfit("a list", value)
            converted = []
            for index, item in enumerate(value):
                try:
                    converted.append(items(item))
                except _MisfitError as exc:
                    exc.path.append(f"[{index}]")
                    raise
            return converted

        return array
    if kind == "null":
        return lambda value: None
    if kind == "string":

        def string(value: Any) -> Any:
            if not isinstance(value, str):
                raise _missing() if value is None else _misfit("a string", value)
            return value

        return string
    if kind in ("long", "int"):

        def integer(value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _missing() if value is None else _misfit("an integer", value)
            return value

        return integer
    if kind == "boolean":

        def boolean(value: Any) -> Any:
            if not isinstance(value, bool):
                raise _missing() if value is None else _misfit("true/false", value)
            return value

        return boolean

    def unsupported(value: Any) -> Any:
        raise _missing() if value is None else _MisfitError(f"unsupported schema type {kind!r}")

    return unsupported


def _compile_record(
    types: dict[str, Schema], schema: Schema, records: dict[int, Converter]
) -> Converter:
    fields: list[tuple[str, Converter]] = []
    names = frozenset(f["name"] for f in schema["fields"] if f["name"] != UNKNOWN_FIELDS)
    keeps_unknown = any(f["name"] == UNKNOWN_FIELDS for f in schema["fields"])

    def record(value: Any) -> Any:
        if value is None:
            raise _missing()
        if not isinstance(value, Mapping):
            raise _misfit("an object", value)
        datum: dict[str, Any] = {}
        for name, convert in fields:
            try:
                datum[name] = convert(value.get(name))
            except _MisfitError as exc:
                exc.path.append(f".{name}")
                raise
        if keeps_unknown:
            unknown = {k: v for k, v in value.items() if k not in names}
            datum[UNKNOWN_FIELDS] = _UNKNOWN_JSON.encode(unknown) if unknown else "{}"
        return datum

    # Registered before its fields are compiled: a field may refer to this very type.
    records[id(schema)] = record
    for field in schema["fields"]:
        if field["name"] != UNKNOWN_FIELDS:
            fields.append((field["name"], _compile(types, field["type"], records)))
    return record


@cache
def _converter(type_name: str) -> Converter:
    types = _named_types(type_name)
    return _compile(types, types[type_name], {})


Reader = Any  # Callable[[Any], Any]: an Avro datum (never None) -> its API JSON value


def _compile_to_api(
    types: dict[str, Schema], schema: Schema, records: dict[int, Reader]
) -> Reader | None:
    """The reader of one schema node (``None``: the value as it is); ``records`` as in
    :func:`_compile`.

    Same rules as walking the schema per datum: a union reads by its first non-null branch, a
    record puts ``unknown_fields`` back into the result and keeps a field that is present (even
    as null), an array reads each item; everything else is returned as it is.
    """
    schema = _resolve(types, schema)
    if isinstance(schema, list):
        return _compile_to_api(types, next(b for b in schema if b != "null"), records)
    kind = schema if isinstance(schema, str) else schema.get("type")
    if isinstance(kind, dict | list):
        return _compile_to_api(types, kind, records)
    if kind == "record":
        return records.get(id(schema)) or _record_reader(types, schema, records)
    if kind == "array":
        item = _compile_to_api(types, schema["items"], records)
        if item is None:
            return list
        return lambda datum: [None if v is None else item(v) for v in datum]
    return None


def _record_reader(types: dict[str, Schema], schema: Schema, records: dict[int, Reader]) -> Reader:
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

    # Registered before its fields are compiled: a field may refer to this very type.
    records[id(schema)] = read
    for field in schema["fields"]:
        if field["name"] != UNKNOWN_FIELDS:
            fields.append((field["name"], _compile_to_api(types, field["type"], records)))
    return read


@cache
def _api_reader(type_name: str) -> Reader:
    types = _named_types(type_name)
    reader = _compile_to_api(types, types[type_name], {})
    assert reader is not None
    return reader


def to_avro(type_name: str, api_record: Mapping[str, Any]) -> dict[str, Any]:
    """API record -> Avro datum of ``type_name``. Raises :class:`ContractError` on bad input."""
    try:
        result = _converter(type_name)(api_record)
    except _MisfitError as exc:
        where = type_name.rsplit(".", 1)[-1] + "".join(reversed(exc.path))
        raise ContractError(f"{where}: {exc.message}") from None
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

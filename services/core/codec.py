"""Avro codec for every Tether message: single-object encoding, resolved by fingerprint.

Wire format (Avro "single object encoding"): ``C3 01`` + the writer schema's 8-byte little-endian
CRC-64-AVRO fingerprint + the Avro binary body. ``schemas/`` is the registry:

- ``schemas/*.avsc`` are the **current** schemas, one file per named type, each file named by the
  type's Avro full name (so ``fastavro.schema.load_schema`` resolves references);
- ``schemas/released/<version>/*.avsc`` are frozen copies of every released version. Every
  fingerprint of every released version stays resolvable, so replay can read old topics.

A reader always resolves the writer's schema (found by fingerprint) into the *current* reader
schema (BACKWARD_TRANSITIVE evolution). Corrupt bytes, an unknown fingerprint or a payload of the
wrong message type raise one typed error, :class:`services.core.errors.DecodeError`, which the
service loops turn into dead letters.

**Confluent wire format (an option for ecosystem interop).** With ``schema_ids`` (a
:class:`SchemaIds`, e.g. ``schema_registry.RegistrySchemaIds`` over a Confluent-compatible
registry) the codec *writes* ``00`` + the 4-byte big-endian schema id + the Avro binary body,
which Kafka Connect, ksqlDB and the registry-aware consumers read. It *reads* both framings, told
apart by the first byte (``C3`` single-object, ``00`` Confluent), so a deployment can switch
format without a replay; a Confluent payload read without a registry is a ``DecodeError``.

Records from the APIs travel in typed Avro records (``records.py`` converts API dicts).
Union branches of records are written and read as ``(full_name, datum)`` tuples, because all
fields of the API record types are optional and fastavro could not otherwise tell them apart.

Imports: standard library and fastavro only (no network I/O: the registry sits behind
:class:`SchemaIds`).
"""

from __future__ import annotations

import importlib.resources
import io
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import fastavro
import fastavro.schema

from services.core.errors import DecodeError

MAGIC = b"\xc3\x01"
HEADER_LENGTH = 10
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_LENGTH = 5
NAMESPACE = "tether"
MESSAGE_TYPES = (
    "ChangeEvent",
    "Command",
    "Outcome",
    "DeadLetter",
    "Cursor",
    "OperatorAction",
    "Tenant",
    "TenantStatus",
    "ForwardedPush",
)

#: The schemas that ship with the code: ``services/core/schemas`` is a link to the repository's
#: ``schemas/`` directory, and the wheel carries its files as package data, so an installed
#: ``tether`` finds them wherever it is installed. The code and its schemas are one release: there
#: is deliberately no setting that points the codec or the record types elsewhere.
DEFAULT_SCHEMAS_DIR = Path(str(importlib.resources.files("services.core") / "schemas")).resolve()

Schema = Any  # fastavro's parsed schema (a dict)


def fingerprint_of(parsed_schema: Schema) -> bytes:
    """The 8-byte little-endian CRC-64-AVRO fingerprint of a parsed schema.

    fastavro prints the CRC-64-AVRO fingerprint as the hex of its little-endian bytes (the Avro
    spec's test vector for ``"string"`` is ``c70345637248018f``), so the bytes are its hex.
    """
    canonical = fastavro.schema.to_parsing_canonical_form(parsed_schema)
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


def load_schema_dir(directory: Path) -> dict[str, Schema]:
    """Parse every message type found in one schema directory (current or a released version)."""
    schemas: dict[str, Schema] = {}
    for name in MESSAGE_TYPES:
        path = directory / f"{NAMESPACE}.{name}.avsc"
        if path.exists():
            schemas[name] = fastavro.schema.load_schema(str(path))
    return schemas


class SchemaRegistry:
    """Current reader schemas plus every released writer schema, indexed by fingerprint."""

    def __init__(self, schemas_dir: Path = DEFAULT_SCHEMAS_DIR) -> None:
        self.schemas_dir = schemas_dir
        self.current: dict[str, Schema] = load_schema_dir(schemas_dir)
        missing = [name for name in MESSAGE_TYPES if name not in self.current]
        if missing:
            raise FileNotFoundError(f"schemas missing in {schemas_dir}: {missing}")
        self.current_fingerprints = {
            name: fingerprint_of(schema) for name, schema in self.current.items()
        }
        # fingerprint -> (message type, writer schema)
        self.writers: dict[bytes, tuple[str, Schema]] = {}
        released = schemas_dir / "released"
        for version_dir in sorted(p for p in released.glob("*") if p.is_dir()):
            for name, schema in load_schema_dir(version_dir).items():
                self.writers.setdefault(fingerprint_of(schema), (name, schema))
        for name, schema in self.current.items():
            self.writers[self.current_fingerprints[name]] = (name, schema)


class SchemaIds(Protocol):
    """Schema ids of a Confluent-compatible registry (``schema_registry.RegistrySchemaIds``)."""

    def id_for(self, message_type: str, schema: Schema) -> int:
        """The id of ``schema`` (registered under the message type's subject if new)."""

    def schema_for(self, schema_id: int) -> Schema:
        """The parsed writer schema with this id (raises ``DecodeError`` if there is none)."""


class AvroCodec:
    """Encode and decode Tether messages: single-object encoding, or Confluent framing."""

    def __init__(
        self, registry: SchemaRegistry | None = None, schema_ids: SchemaIds | None = None
    ) -> None:
        self.registry = registry or default_registry()
        self.schema_ids = schema_ids

    @property
    def wire_format(self) -> str:
        return "confluent" if self.schema_ids is not None else "single-object"

    def encode(self, message_type: str, datum: Mapping[str, Any]) -> bytes:
        """Encode ``datum`` with the current schema of ``message_type``.

        Raises ``ValueError`` (a programming error, not bad input) when the datum does not fit.
        """
        schema = self.registry.current[message_type]
        buffer = io.BytesIO()
        if self.schema_ids is not None:
            buffer.write(bytes([CONFLUENT_MAGIC]))
            buffer.write(self.schema_ids.id_for(message_type, schema).to_bytes(4, "big"))
        else:
            buffer.write(MAGIC)
            buffer.write(self.registry.current_fingerprints[message_type])
        fastavro.schemaless_writer(buffer, schema, datum, strict_allow_default=True)
        return buffer.getvalue()

    def _writer(self, data: bytes) -> tuple[str, Schema, int]:
        """(message type, writer schema, header length) of a payload, from either framing."""
        if len(data) >= HEADER_LENGTH and data[:2] == MAGIC:
            writer = self.registry.writers.get(data[2:HEADER_LENGTH])
            if writer is None:
                raise DecodeError(f"unknown schema fingerprint {data[2:HEADER_LENGTH].hex()}")
            return writer[0], writer[1], HEADER_LENGTH
        if len(data) >= CONFLUENT_HEADER_LENGTH and data[0] == CONFLUENT_MAGIC:
            schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_LENGTH], "big")
            if self.schema_ids is None:
                raise DecodeError(
                    f"Confluent-framed payload (schema id {schema_id}) but no schema registry "
                    "is configured (TETHER_WIRE_FORMAT=confluent, TETHER_SCHEMA_REGISTRY_URL)"
                )
            writer_schema = self.schema_ids.schema_for(schema_id)
            name = str(writer_schema.get("name", "")) if isinstance(writer_schema, dict) else ""
            message_type = name.removeprefix(f"{NAMESPACE}.")
            if message_type not in MESSAGE_TYPES:
                raise DecodeError(f"schema id {schema_id} is {name!r}, not a Tether message")
            return message_type, writer_schema, CONFLUENT_HEADER_LENGTH
        raise DecodeError("not an Avro single-object or Confluent payload (bad header)")

    def message_type_of(self, data: bytes) -> str:
        """Which message type a payload is, from its fingerprint or schema id.

        Raises :class:`DecodeError` for a payload in neither framing, or whose writer schema is
        unknown."""
        return self._writer(bytes(data))[0]

    def decode(self, data: bytes, message_type: str) -> dict[str, Any]:
        """Decode bytes into a datum of the current ``message_type`` schema.

        Raises :class:`DecodeError` for anything that is not a valid ``message_type`` payload.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"{message_type}: payload is {type(data).__name__}, not bytes")
        data = bytes(data)
        try:
            writer_type, writer_schema, header = self._writer(data)
        except DecodeError as exc:
            raise DecodeError(f"{message_type}: {exc}") from None
        if writer_type != message_type:
            raise DecodeError(f"expected a {message_type} payload, got a {writer_type}")
        body = io.BytesIO(data[header:])
        try:
            datum = fastavro.schemaless_reader(
                body,
                writer_schema,
                self.registry.current[message_type],
                return_record_name=True,
                return_record_name_override=True,
                return_named_type_override=False,
            )
        except Exception as exc:  # fastavro raises many types for corrupt bodies
            raise DecodeError(f"{message_type}: corrupt body ({type(exc).__name__})") from exc
        if body.tell() != len(data) - header:
            raise DecodeError(
                f"{message_type}: {len(data) - header - body.tell()} trailing bytes after the body"
            )
        if not isinstance(datum, dict):
            raise DecodeError(f"{message_type}: body is not a record")
        return datum


@cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry()


def default_codec() -> AvroCodec:
    """The codec of a service: the schemas that ship with the code."""
    return AvroCodec(default_registry())

"""The Avro codec: single-object framing, fingerprints, resolution, typed decode errors."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.core.codec import (
    DEFAULT_SCHEMAS_DIR,
    MAGIC,
    MESSAGE_TYPES,
    AvroCodec,
    SchemaRegistry,
    fingerprint_of,
)
from services.core.errors import DecodeError
from services.core.schema_release import load_sample, release, sample_to_datum

SAMPLES = DEFAULT_SCHEMAS_DIR / "samples"


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_round_trip_of_every_message_type(codec: AvroCodec, message_type: str) -> None:
    datum = sample_to_datum(load_sample(SAMPLES, message_type))
    payload = codec.encode(message_type, datum)
    assert payload[:2] == MAGIC
    assert payload[2:10] == codec.registry.current_fingerprints[message_type]
    decoded = codec.decode(payload, message_type)
    for key, value in datum.items():
        got = decoded[key]
        if isinstance(got, datetime):
            got = int(got.timestamp() * 1_000_000)
        assert got == value, key


def test_fingerprint_matches_the_avro_spec_test_vector() -> None:
    # Avro's reference value for the schema "string" is -8142146995180207161 (CRC-64-AVRO).
    assert fingerprint_of("string") == (-8142146995180207161).to_bytes(8, "little", signed=True)


def test_corrupt_bytes_raise_decode_error(codec: AvroCodec) -> None:
    good = codec.encode("Cursor", sample_to_datum(load_sample(SAMPLES, "Cursor")))
    for bad in (b"", b"\x00\x01garbage", good[:12], good + b"\x00\x00", b"\xc3\x01" + b"\x00" * 3):
        with pytest.raises(DecodeError):
            codec.decode(bad, "Cursor")


def test_unknown_fingerprint_raises_decode_error(codec: AvroCodec) -> None:
    good = codec.encode("Cursor", sample_to_datum(load_sample(SAMPLES, "Cursor")))
    forged = good[:2] + b"\x01\x02\x03\x04\x05\x06\x07\x08" + good[10:]
    with pytest.raises(DecodeError, match="unknown schema fingerprint"):
        codec.decode(forged, "Cursor")


def test_payload_of_another_message_type_is_rejected(codec: AvroCodec) -> None:
    cursor = codec.encode("Cursor", sample_to_datum(load_sample(SAMPLES, "Cursor")))
    with pytest.raises(DecodeError, match="expected a ChangeEvent"):
        codec.decode(cursor, "ChangeEvent")


def test_not_bytes_is_rejected(codec: AvroCodec) -> None:
    with pytest.raises(DecodeError):
        codec.decode("text", "Cursor")  # type: ignore[arg-type]


def test_old_writer_resolves_into_an_evolved_reader(tmp_path: Path) -> None:
    """A released v1 payload is read by a current schema that added a defaulted field."""
    schemas = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMAS_DIR, schemas, ignore=shutil.ignore_patterns("released"))
    release("v1", schemas)
    old_payload = (schemas / "released" / "v1" / "golden" / "Cursor.bin").read_bytes()
    cursor_file = schemas / "tether.Cursor.avsc"
    evolved = json.loads(cursor_file.read_text())
    evolved["fields"].append({"name": "lag_seconds", "type": "double", "default": 0.0})
    cursor_file.write_text(json.dumps(evolved))
    codec = AvroCodec(SchemaRegistry(schemas))
    assert old_payload[2:10] != codec.registry.current_fingerprints["Cursor"]
    decoded = codec.decode(old_payload, "Cursor")
    assert decoded["lag_seconds"] == 0.0
    assert decoded["position"] == "2025-11-27T08:00:00.1234567Z"
    new_payload = codec.encode("Cursor", {**decoded, "updated_at": datetime.now(UTC)})
    assert codec.decode(new_payload, "Cursor")["seen"] == ["1001", "1002"]


def test_release_refuses_to_rewrite_a_version(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMAS_DIR, schemas, ignore=shutil.ignore_patterns("released"))
    release("v1", schemas)
    with pytest.raises(FileExistsError):
        release("v1", schemas)

"""BACKWARD_TRANSITIVE guard: every released version's golden payloads decode under the current
schemas, and no released file was edited in place."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from services.core.codec import DEFAULT_SCHEMAS_DIR, MESSAGE_TYPES, AvroCodec
from services.core.schema_release import checksums, sample_to_datum

RELEASED = sorted(p for p in (DEFAULT_SCHEMAS_DIR / "released").glob("*") if p.is_dir())


def test_at_least_one_version_is_released() -> None:
    assert RELEASED, "schemas/released/ must hold the released versions"


@pytest.mark.parametrize("version_dir", RELEASED, ids=lambda p: p.name)
def test_released_files_are_unchanged(version_dir: Path) -> None:
    recorded = (version_dir / "SHA256SUMS").read_text()
    assert checksums(version_dir) == recorded, (
        f"a file of released schema version {version_dir.name} was edited, added or removed; "
        "released versions are frozen — release a new version instead"
    )


def _comparable(value: object) -> object:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000)
    if isinstance(value, tuple):
        return [_comparable(v) for v in value]
    return value


#: (release, message type) for every type a release contains. A type added later (OperatorAction:
#: v3) has neither schema nor golden payload in older releases; that is checked below, not skipped.
GOLDEN = [
    (version_dir, message_type)
    for version_dir in RELEASED
    for message_type in MESSAGE_TYPES
    if (version_dir / "golden" / f"{message_type}.bin").exists()
]


@pytest.mark.parametrize("version_dir", RELEASED, ids=lambda p: p.name)
def test_a_release_without_a_golden_payload_does_not_contain_the_type(version_dir: Path) -> None:
    for message_type in MESSAGE_TYPES:
        golden = (version_dir / "golden" / f"{message_type}.bin").exists()
        assert golden == (version_dir / f"tether.{message_type}.avsc").exists(), message_type


def test_the_newest_release_has_every_message_type() -> None:
    newest = RELEASED[-1]
    assert {t for v, t in GOLDEN if v == newest} == set(MESSAGE_TYPES)


@pytest.mark.parametrize(
    ("version_dir", "message_type"), GOLDEN, ids=lambda v: getattr(v, "name", v)
)
def test_golden_payloads_decode_under_current_schemas(version_dir: Path, message_type: str) -> None:
    codec = AvroCodec()
    golden = version_dir / "golden"
    payload = (golden / f"{message_type}.bin").read_bytes()
    expected = sample_to_datum(json.loads((golden / f"{message_type}.json").read_text()))
    decoded = codec.decode(payload, message_type)
    for key, value in expected.items():
        assert _comparable(decoded[key]) == _comparable(value), key

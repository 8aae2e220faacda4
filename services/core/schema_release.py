"""Releasing the event contracts: frozen schema copies, golden payloads and checksums.

``release(version)`` freezes the current ``schemas/*.avsc`` into ``schemas/released/<version>/``,
encodes every sample datum of ``schemas/samples/<Type>.json`` with it into
``golden/<Type>.bin`` (next to a copy of the sample as ``golden/<Type>.json``), and writes
``SHA256SUMS`` over all of it. From then on:

- the codec resolves that version's fingerprints forever (replay reads old topics);
- the tests decode every golden payload of every release under the *current* schemas
  (BACKWARD_TRANSITIVE) and verify ``SHA256SUMS`` — editing a released schema in place fails.

Run it as ``tether schemas release <version>`` when a schema change ships, never by hand-copying.

Imports: standard library and the core codec.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from services.core.codec import DEFAULT_SCHEMAS_DIR, MESSAGE_TYPES, AvroCodec, SchemaRegistry

RECORD_UNION_FIELDS = ("record", "target_record")
BYTES_FIELDS = ("key", "payload")


def sample_to_datum(sample: dict[str, Any]) -> dict[str, Any]:
    """JSON sample -> datum: record-union branches are ``[name, datum]`` lists, bytes are hex."""
    datum = dict(sample)
    for field in RECORD_UNION_FIELDS:
        if isinstance(datum.get(field), list):
            name, value = datum[field]
            datum[field] = (name, value)
    for field in BYTES_FIELDS:
        if isinstance(datum.get(field), str):
            datum[field] = bytes.fromhex(datum[field])
    return datum


def load_sample(directory: Path, message_type: str) -> dict[str, Any]:
    data = json.loads((directory / f"{message_type}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def checksums(version_dir: Path) -> str:
    lines = []
    for path in sorted(version_dir.rglob("*")):
        if path.is_file() and path.name != "SHA256SUMS":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(f"{digest}  {path.relative_to(version_dir).as_posix()}")
    return "\n".join(lines) + "\n"


def release(version: str, schemas_dir: Path = DEFAULT_SCHEMAS_DIR) -> Path:
    target = schemas_dir / "released" / version
    if target.exists():
        raise FileExistsError(f"{target} exists: a released version is never rewritten")
    codec = AvroCodec(SchemaRegistry(schemas_dir))
    golden = target / "golden"
    golden.mkdir(parents=True)
    for schema_file in sorted(schemas_dir.glob("*.avsc")):
        shutil.copy2(schema_file, target / schema_file.name)
    for message_type in MESSAGE_TYPES:
        sample = load_sample(schemas_dir / "samples", message_type)
        payload = codec.encode(message_type, sample_to_datum(sample))
        (golden / f"{message_type}.bin").write_bytes(payload)
        (golden / f"{message_type}.json").write_text(
            json.dumps(sample, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    (target / "SHA256SUMS").write_text(checksums(target))
    return target

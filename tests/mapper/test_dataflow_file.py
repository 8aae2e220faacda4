"""Reading dataflow files (services/mapper/dataflow_file.py), the mapper's settings and start-up,
and the committed JSON Schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import ConfigurationError
from services.mapper.dataflow_file import (
    DEFAULT_DATAFLOW_FILE,
    load_compiled,
    load_dataflow,
    parse_dataflow,
    schema_text,
)
from services.mapper.domain import Policy
from services.mapper.domain.mappings import FLOWS, PROPERTIES, hub, use_dataflow
from services.mapper.settings import MapperSettings

ROOT = Path(__file__).resolve().parents[2]


def default_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "dataflows" / "default.json").read_text())
    return data


@pytest.fixture
def restore_registries() -> Iterator[None]:
    saved = (hub(), dict(FLOWS), dict(PROPERTIES))
    yield
    use_dataflow(*saved)


def write(tmp_path: Path, data: object, name: str = "flow.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_the_committed_schema_is_current() -> None:
    committed = (ROOT / "dataflows" / "dataflow.schema.json").read_text()
    assert committed == schema_text(), "run: tether dataflow schema --write"


def test_the_schema_describes_the_file() -> None:
    schema = json.loads(schema_text())
    assert set(schema["required"]) >= {"version", "hub", "properties", "flows"}
    assert schema["additionalProperties"] is False
    flow = schema["$defs"]["FlowDecl"]
    assert {"properties", "match", "inactive_when", "resource"} <= set(flow["properties"])


def test_the_shipped_default_is_the_settings_default_and_is_packaged() -> None:
    assert DEFAULT_DATAFLOW_FILE.resolve() == (ROOT / "dataflows" / "default.json").resolve()
    assert MapperSettings().mapper_dataflow_file == DEFAULT_DATAFLOW_FILE
    assert load_compiled(DEFAULT_DATAFLOW_FILE).flows == FLOWS


def test_a_bad_file_names_the_file_and_every_path(tmp_path: Path) -> None:
    data = default_data()
    data["flows"][1]["properties"][0]["property"] = "emial"
    data["flows"][0]["properties"][0]["direction"] = "to_hub"
    path = write(tmp_path, data)
    with pytest.raises(ConfigurationError) as info:
        load_dataflow(path)
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid dataflow file"
    assert f"{path}: flows[0].properties[0].direction: Input should be 'both'" in lines
    # A cross-field problem is reported once all fields parse; fix the first, see the next.
    data["flows"][0]["properties"][0]["direction"] = "both"
    with pytest.raises(ConfigurationError) as info:
        load_dataflow(write(tmp_path, data))
    assert (
        f"{path}: flows[1].properties[0].property: unknown property 'emial'; declared: "
        "['email', 'first_name', 'last_name', 'phone']" in str(info.value).splitlines()
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"version": 1,\n "hub": }', "not valid JSON: line 2 column 9"),
        ("[1, 2]", "a dataflow file holds one JSON object"),
        ('{"version": 1}', "hub: Field required"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_dataflow(text, "x.json")
    assert expected in str(info.value)
    assert "x.json" in str(info.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_dataflow(tmp_path / "nope.json")
    assert str(info.value).startswith(f"{tmp_path / 'nope.json'}: cannot read the dataflow file")


def test_settings_install_the_configured_file_and_an_explicit_policy_wins(
    tmp_path: Path, restore_registries: None
) -> None:
    data = default_data()
    data["flows"] = [f for f in data["flows"] if f["resource"] != "employees"]
    data["policy"]["propagate_deletes"] = True
    path = write(tmp_path, data)
    policy = MapperSettings(mapper_dataflow_file=path).install_dataflow()
    assert policy.propagate_deletes is True
    assert set(FLOWS) == {"contact_persons", "customers"}
    explicit = MapperSettings(
        mapper_dataflow_file=path, mapper_policy='{"create_members_for_unmatched_hub": true}'
    ).install_dataflow()
    assert explicit == Policy(create_members_for_unmatched_hub=True)


def test_a_policy_naming_a_system_the_dataflow_does_not_sync_is_refused(
    tmp_path: Path, restore_registries: None
) -> None:
    settings = MapperSettings(
        mapper_dataflow_file=write(tmp_path, default_data()),
        mapper_policy='{"conflict_default": {"winner": "hubspot"}}',
    )
    with pytest.raises(ConfigurationError, match="winner 'hubspot' is not a system"):
        settings.install_dataflow()


def _tether(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=ROOT,
    )


def test_the_mapper_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    data = default_data()
    data["properties"][3]["hub_field"] = "info.phones[0].phone"
    path = write(tmp_path, data)
    done = _tether("mapper", env={"TETHER_MAPPER_DATAFLOW_FILE": str(path)})
    assert done.returncode == 2
    assert f"{path}: properties[3].hub_field: 'info.phones[0].phone' is not a hub field" in (
        done.stderr
    )


def test_the_dataflow_command(tmp_path: Path) -> None:
    ok = _tether("dataflow", "check", env={})
    assert ok.returncode == 0, ok.stderr
    assert "valid; flows: A=employees(3 properties)" in ok.stdout
    data = default_data()
    del data["flows"][0]["inactive_when"]
    bad = _tether("dataflow", "check", str(write(tmp_path, data)), env={})
    assert bad.returncode == 1
    assert "flows[0].inactive_when: Field required" in bad.stderr
    schema = _tether("dataflow", "schema", env={})
    assert schema.returncode == 0 and schema.stdout == schema_text()

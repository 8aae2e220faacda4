"""The tenant registry on real Kafka: the CLI writes, a directory follows, tombstones erase."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from services.core.codec import default_codec
from services.core.kafka import make_producer, provision_topics
from services.core.settings import TetherSettings
from services.tenants import cli
from services.tenants.model import Tenant, TenantStatus
from services.tenants.registry import TenantDirectory, TenantRegistry


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> TetherSettings:
    s = TetherSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, tenant_partitions=3
    )
    provision_topics(s)
    return s


def tether_tenants(settings: TetherSettings, *argv: str) -> dict:
    out = io.StringIO()
    args = cli._parser().parse_args(["--by", "test", *argv])
    assert cli.run(args, settings, out) == 0
    return json.loads(out.getvalue()) if out.getvalue().lstrip().startswith(("{", "[")) else {}


def test_add_pause_resume_remove_reach_a_following_directory(
    settings: TetherSettings, tmp_path: Path
) -> None:
    directory = TenantDirectory(settings, default_codec())
    changes: dict[str, list[tuple[str | None, str | None]]] = {}

    def record(before: Tenant | None, after: Tenant | None) -> None:
        name = (after or before).tenant  # type: ignore[union-attr]
        changes.setdefault(name, []).append(
            (before.state if before else None, after.state if after else None)
        )

    directory.listen(record)
    directory.refresh()
    assert directory.loaded and directory.tenants() == {}

    added = tether_tenants(
        settings,
        "add",
        "acme",
        "--set",
        "wix_site_id=site-1",
        "--set",
        "poweroffice_requests_per_second=5",
        "--credentials",
        f"dir:{tmp_path}",
    )
    assert (added["state"], added["version"], added["updated_by"]) == ("active", 1, "test")
    tether_tenants(settings, "add", "globex", "--set", "wix_site_id=site-2", "--paused")
    tether_tenants(settings, "pause", "acme", "--reason", "invoice dispute")
    tether_tenants(settings, "resume", "acme")
    removed = tether_tenants(settings, "remove", "globex")
    assert (removed["state"], removed["version"]) == ("removed", 2)

    assert directory.refresh() == 5
    tenants = directory.tenants()
    assert {t: (v.state, v.version) for t, v in tenants.items()} == {
        "acme": ("active", 3),
        "globex": ("removed", 2),
    }
    assert tenants["acme"].settings == {
        "wix_site_id": "site-1",
        "poweroffice_requests_per_second": "5",
    }
    # In order per tenant (one key, one partition); tenants' partitions interleave freely.
    assert changes == {
        "acme": [(None, "active"), ("active", "paused"), ("paused", "active")],
        "globex": [(None, "paused"), ("paused", "removed")],
    }
    directory.close()


def test_refused_changes_write_nothing(settings: TetherSettings) -> None:
    tether_tenants(settings, "add", "acme", "--set", "wix_site_id=s")
    for argv in (
        ["add", "acme", "--set", "wix_site_id=t"],  # exists
        ["add", "initech", "--set", "wix_api_key=secret-value"],  # a secret in the registry
        ["add", "initech", "--set", "no_such_setting=1"],
        ["pause", "ghost"],
    ):
        args = cli._parser().parse_args(["--by", "t", *argv])
        with pytest.raises(ValueError) as refused:
            cli.run(args, settings, io.StringIO())
        assert "secret-value" not in str(refused.value)
    directory = TenantDirectory(settings, default_codec())
    directory.refresh()
    assert list(directory.tenants()) == ["acme"]
    assert directory.get("acme").settings == {"wix_site_id": "s"}  # type: ignore[union-attr]
    directory.close()


def test_list_shows_status_and_tombstones_erase_a_tenant(settings: TetherSettings) -> None:
    registry = TenantRegistry(settings, default_codec())
    registry.add(Tenant(tenant="acme"))
    registry.add(Tenant(tenant="acme-2"))
    registry.put_status(TenantStatus(tenant="acme", phase="live", owner="extractor-0"))
    rows = tether_tenants(settings, "list", "--json")
    assert [(r["tenant"], r["phase"], r["owner"]) for r in rows] == [
        ("acme", "live", "extractor-0"),
        ("acme-2", None, None),
    ]
    registry.tombstone("acme")
    registry.close()
    directory = TenantDirectory(settings, default_codec())
    directory.refresh()
    assert list(directory.tenants()) == ["acme-2"] and directory.statuses() == {}
    directory.close()


def test_an_undecodable_registration_is_skipped_and_the_previous_one_kept(
    settings: TetherSettings,
) -> None:
    registry = TenantRegistry(settings, default_codec())
    registry.add(Tenant(tenant="acme"))
    registry.close()
    producer = make_producer(settings, "test")
    producer.send(f"{settings.topic_prefix}.tenants", key=b"acme", value=b"\x00garbage").get(30)
    producer.close()
    directory = TenantDirectory(settings, default_codec())
    assert directory.refresh() == 2
    kept = directory.get("acme")
    assert kept is not None and (kept.state, kept.version) == ("active", 1)
    directory.close()


def test_erasing_a_registered_tenant_that_is_not_removed_is_refused(
    settings: TetherSettings,
) -> None:
    tether_tenants(settings, "add", "acme", "--set", "wix_site_id=s")
    tether_tenants(settings, "pause", "acme")
    args = cli._parser().parse_args(["erase", "acme", "--execute"])
    with pytest.raises(ValueError, match="is paused: `tether tenants remove` it"):
        cli.run(args, settings, io.StringIO())

"""Extractor replicas share the registry's tenants (real Kafka, a simulated Wix site per tenant).

Two replicas (``Fleet``) in this process over six tenants: every tenant's records are emitted
once, with no gap; a stopped replica's tenants move to the other and finish with nothing lost
and nothing repeated; pause stops a tenant's work and resume picks up what changed meanwhile;
remove stops it for good; a settings change rebuilds the tenant's unit without a restart. The
statuses the owners publish follow the tenants' phases. A replica run as its own process and
killed (-9: it never leaves the group) loses its tenants to the other after the session timeout;
they resume from the saved cursors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.extractor.fleet_support import Fleets, emitted, tenant_ids, wait_until

ROOT = Path(__file__).resolve().parents[2]


def caught_up(f: Fleets, tenants: list[str]) -> bool:
    """Every tenant's current contact versions are on Kafka."""
    return all(set(f.versions(t)) <= set(emitted(f.events(t))) for t in tenants)


def test_two_replicas_share_the_tenants_and_one_takes_over(fleets: Fleets) -> None:
    tenants = tenant_ids(6)
    for n, tenant in enumerate(tenants):
        fleets.add_tenant(tenant, contacts=4 + n)
    a = fleets.start_replica("replica-a")
    b = fleets.start_replica("replica-b")

    wait_until(lambda: caught_up(fleets, tenants), "every tenant's snapshot on Kafka")
    # The tenants are spread over both replicas, each on exactly one of them, which reports it.
    wait_until(fleets.settled, "the tenants shared by both replicas")
    assert a.tenants() and b.tenants() and a.tenants().isdisjoint(b.tenants())
    wait_until(
        lambda: (
            {t: (s.phase, s.owner) for t, s in fleets.statuses().items()}
            == {t: ("live", owner) for t, owner in fleets.owners().items()}
        ),
        "every tenant live, reported by its owner",
    )
    for tenant in tenants:
        # Exactly once, no gap: one event per contact, the version the site holds.
        assert emitted(fleets.events(tenant)) == fleets.versions(tenant)
        # Counted under the tenant's own label (by whichever replica ran it when: the first
        # replica may have started every tenant before the second joined).
        counted = [
            r.ctx.registry.get_sample_value(
                "tether_extractor_events_total",
                {
                    "tenant": tenant,
                    "system": "wix",
                    "resource": "contacts",
                    "operation": "UPSERT",
                    "origin": "POLL",
                },
            )
            for r in (a, b)
        ]
        assert sum(n or 0 for n in counted) == len(fleets.versions(tenant))

    # Replica a stops; meanwhile every contact of every tenant changes.
    moving = sorted(a.tenants())
    fleets.stop_replica(a)
    for tenant in tenants:
        admin = fleets.sites[tenant].admin
        for contact in admin.contacts():
            admin.edit(contact["id"], {"name": {"first": "Edited"}})
    wait_until(lambda: caught_up(fleets, tenants), "every edit on Kafka")
    assert b.tenants() == set(tenants)
    wait_until(
        lambda: all(fleets.statuses()[t].owner == "replica-b" for t in moving),
        "the moved tenants reported by their new owner",
    )
    for tenant in tenants:
        versions = fleets.versions(tenant)
        assert {version for _, version in versions} == {"2"}
        # Both versions of every contact, each once: nothing lost, nothing repeated.
        first = [(record, "1") for record, _ in versions]
        assert emitted(fleets.events(tenant)) == sorted(first + versions)


def test_pause_resume_remove_and_change_settings(fleets: Fleets) -> None:
    paused, removed, running = tenant_ids(3)
    for tenant in (paused, removed, running):
        fleets.add_tenant(tenant, contacts=3)
    fleets.start_replica("replica-a")
    fleets.start_replica("replica-b")
    wait_until(lambda: caught_up(fleets, [paused, removed, running]), "the snapshots on Kafka")
    wait_until(fleets.settled, "the tenants shared by both replicas")

    registry = fleets.registry()
    try:
        registry.set_state(paused, "paused", by="test", reason="")
        registry.set_state(removed, "removed", by="test", reason="")
        # The owner reports the new phase once the tenant's work has ended.
        wait_until(
            lambda: (
                fleets.statuses()[paused].phase == "paused"
                and fleets.statuses()[removed].phase == "stopped"
            ),
            "paused and stopped reported",
        )
        before = {t: emitted(fleets.events(t)) for t in (paused, removed)}
        for tenant in (paused, removed, running):
            admin = fleets.sites[tenant].admin
            admin.edit(admin.contacts()[0]["id"], {"name": {"first": "Changed"}})
        # The running tenant's edit is on Kafka; the paused and removed tenants' are not.
        wait_until(lambda: caught_up(fleets, [running]), "the running tenant's edit")
        assert {t: emitted(fleets.events(t)) for t in (paused, removed)} == before

        registry.set_state(paused, "active", by="test", reason="")
        wait_until(lambda: caught_up(fleets, [paused]), "the edit made while paused")
        assert emitted(fleets.events(paused)) == sorted(
            [*before[paused], *set(fleets.versions(paused)) - set(before[paused])]
        )
        wait_until(lambda: fleets.statuses()[paused].phase == "live", "resumed tenant live")
        assert emitted(fleets.events(removed)) == before[removed]

        # A settings change rebuilds the tenant's unit with the new settings, no restart.
        registry.update_settings(running, {"wix_page_size": "2"}, by="test", reason="")
        wait_until(
            lambda: any(
                (unit := r.fleet.units.get(running)) is not None
                and unit.extractor.settings.wix_page_size == 2
                for r in fleets.replicas
            ),
            "the unit rebuilt with the new page size",
        )
        admin = fleets.sites[running].admin
        admin.edit(admin.contacts()[1]["id"], {"name": {"first": "Again"}})
        wait_until(lambda: caught_up(fleets, [running]), "the edit after the rebuild")
        assert len(emitted(fleets.events(running))) == len(set(emitted(fleets.events(running))))
    finally:
        registry.close()


def test_a_killed_replicas_tenants_move_after_the_session_timeout(
    fleets: Fleets, tmp_path: Path
) -> None:
    tenants = tenant_ids(4)
    for tenant in tenants:
        fleets.add_tenant(tenant, contacts=3)
    log = open(tmp_path / "killed.log", "ab")  # noqa: SIM115 - the child keeps it
    killed = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "extractor"],
        env=fleets.process_env("replica-killed", tmp_path / "no-secrets"),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: (
                {s.owner for s in fleets.statuses().values()} == {"replica-killed"}
                and len(fleets.statuses()) == len(tenants)
            ),
            "the process runs every tenant",
        )
        survivor = fleets.start_replica("replica-b")
        wait_until(
            lambda: (
                {s.owner for s in fleets.statuses().values()} == {"replica-killed", "replica-b"}
            ),
            "the tenants shared by both",
        )
        wait_until(lambda: caught_up(fleets, tenants), "every snapshot on Kafka")
    finally:
        os.killpg(killed.pid, signal.SIGKILL)  # no leave, no revocation: the session expires
        killed.wait()
    for tenant in tenants:
        admin = fleets.sites[tenant].admin
        for contact in admin.contacts():
            admin.edit(contact["id"], {"name": {"first": "Edited"}})
    wait_until(lambda: caught_up(fleets, tenants), "every edit on Kafka")
    assert survivor.tenants() == set(tenants)
    for tenant in tenants:
        versions = fleets.versions(tenant)
        # Resumed from the saved cursors: both versions of every contact, each once.
        assert emitted(fleets.events(tenant)) == sorted(
            [(record, "1") for record, _ in versions] + versions
        )

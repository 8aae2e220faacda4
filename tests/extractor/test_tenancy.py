"""The fleet's pure rules: which tenant units to start/stop/rebuild, the phase, the replica id."""

from __future__ import annotations

from services.extractor.tenancy import UnitPlan, phase_of, plan_units, replica_id, tenant_for
from services.tenants.model import Tenant, new_tenant


def tenant(name: str, *, version: int = 1, state: str = "active") -> Tenant:
    registered = new_tenant(name, settings={}, credentials_ref="", by="test")
    return registered.model_copy(update={"version": version, "state": state})


def test_units_start_for_new_active_tenants_and_stop_for_the_others() -> None:
    wanted = {
        "new": tenant("new"),
        "same": tenant("same", version=3),
        "changed": tenant("changed", version=2),
        "paused": tenant("paused", version=2, state="paused"),
        "removed": tenant("removed", version=5, state="removed"),
        "paused-before": tenant("paused-before", state="paused"),
    }
    running = {"same": 3, "changed": 1, "paused": 1, "removed": 4, "gone": 1}
    assert plan_units(wanted, running) == UnitPlan(
        start=("new",), stop=("gone", "paused", "removed"), rebuild=("changed",)
    )


def test_nothing_to_do_is_an_empty_plan() -> None:
    assert not plan_units({"a": tenant("a", version=2)}, {"a": 2})
    assert not plan_units({"p": tenant("p", state="paused")}, {})


def test_the_phase_follows_the_tenants_work() -> None:
    active = tenant("a")
    assert phase_of(active, ready=False, covered=False, failing={}) == ("onboarding", "")
    assert phase_of(active, ready=True, covered=False, failing={}) == ("initial_sync", "")
    assert phase_of(active, ready=True, covered=True, failing={}) == ("live", "")
    failing = {
        "poll wix/contacts": "http_503",
        "reconcile wix/contacts": "timeout",
        "x": "http_503",
    }
    assert phase_of(active, ready=True, covered=True, failing=failing) == (
        "failing",
        "http_503,timeout",
    )
    assert phase_of(tenant("p", state="paused"), ready=False, covered=False, failing={}) == (
        "paused",
        "",
    )
    assert phase_of(tenant("r", state="removed"), ready=True, covered=True, failing={}) == (
        "stopped",
        "",
    )


def test_the_replica_is_the_pod_else_host_and_pid() -> None:
    assert replica_id({"HOSTNAME": "extractor-7c9f-2"}, "node", 12) == "extractor-7c9f-2"
    assert replica_id({}, "laptop", 4242) == "laptop-4242"


def test_a_push_belongs_to_the_tenant_whose_setting_it_names() -> None:
    def named(name: str, instance: str, state: str = "active") -> Tenant:
        registered = new_tenant(
            name, settings={"wix_instance_id": instance}, credentials_ref="", by="test"
        )
        return registered.model_copy(update={"state": state})

    tenants = {
        "acme": named("acme", "i-1"),
        "gone": named("gone", "i-2", "removed"),
        "later": named("later", "i-3", "paused"),
        "twin-b": named("twin-b", "i-4"),
        "twin-a": named("twin-a", "i-4", "paused"),
        "twin-c": named("twin-c", "i-4"),
    }
    found = {key: tenant_for(tenants, "wix_instance_id", key) for key in ("i-1", "i-2", "i-3")}
    assert {key: t.tenant if t else None for key, t in found.items()} == {
        "i-1": "acme",
        "i-2": None,
        "i-3": "later",
    }
    twin = tenant_for(tenants, "wix_instance_id", "i-4")
    assert twin is not None and twin.tenant == "twin-b"
    assert tenant_for(tenants, "wix_site_id", "i-1") is None

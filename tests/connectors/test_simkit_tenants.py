"""The multi-tenant simulators' pure routing pieces: the token index and the admin paths."""

from __future__ import annotations

from services.connectors.simkit import TENANT_ID, TokenIndex, tenant_admin_path, tenant_ids


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_index_names_the_issuing_tenant_and_prunes_expired_tokens():
    clock = Clock()
    index = TokenIndex(clock)
    index.add("t-a", "alpha", lifetime_seconds=10)
    index.add("t-b", "beta", lifetime_seconds=60)
    assert index.tenant_of("t-a") == "alpha"
    assert index.tenant_of("t-b") == "beta"
    assert index.tenant_of("unknown") is None
    clock.now += 30
    index.add("t-c", "alpha", lifetime_seconds=10)  # adding prunes what has expired
    assert index.tenant_of("t-a") is None
    assert len(index) == 2
    assert index.tenant_of("t-c") == "alpha" and index.tenant_of("t-b") == "beta"


def test_tenant_admin_paths():
    assert tenant_admin_path("/_tenants/alpha/_admin/contacts/1") == (
        "alpha",
        "/_admin/contacts/1",
    )
    assert tenant_admin_path("/_tenants/alpha/_admin") == ("alpha", "/_admin")
    assert tenant_admin_path("/_tenants/alpha/v2/Employees") is None
    assert tenant_admin_path("/_tenants/alpha/_adminx") is None
    assert tenant_admin_path("/_tenants//_admin/reset") is None
    assert tenant_admin_path("/_admin/reset") is None


def test_tenant_ids_are_registry_ids():
    assert tenant_ids(3) == ["tenant-001", "tenant-002", "tenant-003"]
    assert all(TENANT_ID.match(t) for t in tenant_ids(200))
    assert not TENANT_ID.match("Tenant 1") and not TENANT_ID.match("-a")

"""``Stack(simulator_tenants=N)`` starts both simulators as processes serving tenant ``default``
(the stack's own credentials) and N tenants, which ``seed_tenant`` seeds one by one."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.connectors.tenantseed import generate_tenant
from services.demo.stack import Stack
from services.demo.tenant_simulators import seed_tenant


def test_stack_runs_multi_tenant_simulators(tmp_path: Path):
    stack = Stack("unused:9092", "postgresql://unused", tmp_path, simulator_tenants=2)
    stack.start_simulators()
    try:
        for url in (stack.poweroffice_url, stack.wix_url):
            tenants = httpx.get(f"{url}/_tenants").json()["tenants"]
            assert [t["tenant"] for t in tenants] == ["default", "tenant-001", "tenant-002"]
        data = generate_tenant("tenant-002", records=20)
        seeded = seed_tenant("tenant-002", data, stack.poweroffice_url, stack.wix_url)
        assert seeded.counts()["employees"] == len(data.employees)
        contacts = httpx.get(f"{stack.wix_url}/_tenants/tenant-002/_admin/contacts").json()
        assert len(contacts["contacts"]) == len(data.wix_contacts)
        assert httpx.get(f"{stack.wix_url}/_admin/contacts").json()["contacts"] == []
    finally:
        stack.stop()

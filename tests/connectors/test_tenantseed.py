"""Per-tenant seed data: deterministic by tenant, distinct between tenants, people shared."""

from __future__ import annotations

import pytest

from services.connectors.seed import SeedData, normalize_email, normalize_phone
from services.connectors.tenantseed import (
    generate_tenant,
    share_people,
    tenant_record_count,
    tenant_seed,
)


def po_records(data: SeedData) -> list[dict[str, object]]:
    return [*data.employees, *data.customers, *(r for _, r in data.contact_persons)]


def emails(data: SeedData) -> set[str]:
    return {
        normalize_email(str(r["EmailAddress"])) for r in po_records(data) if r.get("EmailAddress")
    }


def phones(data: SeedData) -> set[str]:
    return {
        normalize_phone(str(r["PhoneNumber"])) for r in po_records(data) if r.get("PhoneNumber")
    }


def test_deterministic_per_tenant_and_within_the_bounds():
    assert tenant_seed("tenant-001") == tenant_seed("tenant-001") != tenant_seed("tenant-002")
    counts = [tenant_record_count(f"t{i}") for i in range(200)]
    assert all(50 <= n <= 200 for n in counts) and len(set(counts)) > 50
    assert tenant_record_count("t1", minimum=7, maximum=7) == 7
    first, again = generate_tenant("tenant-001"), generate_tenant("tenant-001")
    assert first == again
    assert first.expectations["records"] == tenant_record_count("tenant-001")
    assert generate_tenant("tenant-002", records=60).expectations["records"] == 60


def test_tenants_get_distinct_data():
    one, two = (
        generate_tenant("tenant-001", records=100),
        generate_tenant("tenant-002", records=100),
    )
    assert one.employees != two.employees
    assert len(emails(one) & emails(two)) <= 2  # only a chance collision of common names


def test_shared_people_keep_the_target_tenants_own_structure():
    source = generate_tenant("tenant-001", records=120)
    target = generate_tenant("tenant-002", records=120)
    shared = share_people(source, target, 10, seed=1)
    assert len(shared.emails) == 10
    assert set(shared.emails) <= emails(source) & emails(shared.data)
    assert set(shared.emails).isdisjoint(emails(target))
    assert shared.phones and set(shared.phones) <= phones(source) & phones(shared.data)
    # A renaming, not a restructuring: who matches whom inside the tenant is unchanged.
    assert shared.data.expectations == target.expectations
    assert len(emails(shared.data)) == len(emails(target))
    # The spellings keep their style (upper case, spaces, mixed case).
    styles = sorted(
        (r["EmailAddress"] != str(r["EmailAddress"]).strip(), str(r["EmailAddress"]).isupper())
        for r in po_records(shared.data)
        if r.get("EmailAddress")
    )
    assert styles == sorted(
        (r["EmailAddress"] != str(r["EmailAddress"]).strip(), str(r["EmailAddress"]).isupper())
        for r in po_records(target)
        if r.get("EmailAddress")
    )
    assert share_people(source, target, 10, seed=1) == shared


def test_sharing_more_people_than_there_are_is_refused():
    source = generate_tenant("a", records=20)
    target = generate_tenant("b", records=20)
    with pytest.raises(ValueError, match="can be shared"):
        share_people(source, target, 500)

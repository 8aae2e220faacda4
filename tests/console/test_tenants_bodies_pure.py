"""The console's tenant request bodies to registry operations (pure: no Kafka, no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from services.console.tenants import (
    names,
    parse_reason,
    parse_registration,
    parse_settings_change,
)
from services.tenants.credentials import CredentialsError
from services.tenants.model import TenantError


def test_a_registration_body_becomes_the_registration_the_cli_would_write() -> None:
    tenant = parse_registration(
        {
            "tenant": "acme",
            "settings": {
                "WIX_SITE_ID": "site-1",
                "poweroffice_requests_per_second": 5,
                "poweroffice_poll_interval_seconds": 2.5,
            },
            "credentials_ref": "secret:tether-tenant-acme",
            "paused": True,
            "reason": "contract signed",
        },
        by="alice",
    )
    assert (tenant.tenant, tenant.state, tenant.dataflow, tenant.version) == (
        "acme",
        "paused",
        "default",
        1,
    )
    assert tenant.settings == {
        "wix_site_id": "site-1",
        "poweroffice_requests_per_second": "5",
        "poweroffice_poll_interval_seconds": "2.5",
    }
    assert (tenant.credentials_ref, tenant.updated_by, tenant.reason) == (
        "secret:tether-tenant-acme",
        "alice",
        "contract signed",
    )
    minimal = parse_registration({"tenant": "globex"}, by="bob")
    assert (minimal.state, minimal.settings, minimal.credentials_ref) == ("active", {}, "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "must be a JSON object"),
        ([], "must be a JSON object"),
        ({}, "invalid tenant id"),
        ({"tenant": 7}, "tenant must be a string"),
        ({"tenant": "acme", "state": "active"}, "unknown fields: state"),
        ({"tenant": "acme", "paused": "yes"}, "paused must be true or false"),
        ({"tenant": "acme", "settings": ["wix_site_id"]}, "settings must be an object"),
        ({"tenant": "acme", "settings": {"wix_site_id": None}}, "settings.wix_site_id must be"),
        ({"tenant": "acme", "settings": {"wix_api_key": "k-123"}}, "wix_api_key is a secret"),
        ({"tenant": "acme", "settings": {"nope": "1"}}, "unknown setting 'nope'"),
        ({"tenant": "acme", "credentials_ref": "secret:../x"}, "invalid credentials reference"),
    ],
)
def test_a_body_the_rules_refuse_names_the_field_never_the_value(body: Any, message: str) -> None:
    with pytest.raises((TenantError, CredentialsError)) as refused:
        parse_registration(body, by="alice")
    assert message in str(refused.value)
    assert "k-123" not in str(refused.value)


def test_settings_changes_and_reasons() -> None:
    assert parse_settings_change({"settings": {"wix_site_id": "s"}, "reason": "moved"}) == (
        {"wix_site_id": "s"},
        "moved",
    )
    for body in ({}, {"settings": {}}, {"settings": {"wix_site_id": "s"}, "paused": True}):
        with pytest.raises(TenantError):
            parse_settings_change(body)
    assert parse_reason({}) == "" and parse_reason({"reason": "dispute"}) == "dispute"
    for bad in (None, {"reason": 1}, {"why": "x"}):
        with pytest.raises(TenantError):
            parse_reason(bad)


def test_tenant_administrators_are_a_comma_separated_list_of_names() -> None:
    assert names("") == frozenset()
    assert names(" carol, dave ,,") == frozenset({"carol", "dave"})

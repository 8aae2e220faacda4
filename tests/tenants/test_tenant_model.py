"""The tenant registration rules and per-tenant settings (pure)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.extractor.settings import ExtractorSettings
from services.loader.settings import LoaderSettings
from services.tenants import model
from services.tenants.model import Tenant, TenantError, check_overrides, new_tenant, settings_for

CLASSES = (ExtractorSettings, LoaderSettings)


def tenant(**changes: object) -> Tenant:
    base = new_tenant("acme", settings={"wix_site_id": "site-1"}, credentials_ref="", by="ops")
    return base.model_copy(update=changes)


@pytest.mark.parametrize("bad", ["", "Acme", "a/b", "-acme", "acme-", "a" * 64, "ac me", "é"])
def test_a_tenant_id_that_would_break_keys_labels_or_names_is_refused(bad: str) -> None:
    with pytest.raises(TenantError):
        model.check_tenant_id(bad)


def test_adding_an_existing_or_removed_tenant_is_refused() -> None:
    proposed = tenant()
    assert model.add(None, proposed) is proposed
    with pytest.raises(TenantError, match="change it instead"):
        model.add(tenant(), proposed)
    with pytest.raises(TenantError, match="erase it first"):
        model.add(tenant(state="removed"), proposed)


def test_pause_resume_remove_bump_the_version_and_repeat_as_no_ops() -> None:
    active = tenant()
    paused = model.set_state(active, "acme", "paused", by="kim", reason="invoice dispute")
    assert (paused.state, paused.version, paused.updated_by) == ("paused", 2, "kim")
    assert model.set_state(paused, "acme", "paused", by="kim", reason="") is paused
    resumed = model.set_state(paused, "acme", "active", by="kim", reason="")
    assert (resumed.state, resumed.version) == ("active", 3)
    removed = model.set_state(resumed, "acme", "removed", by="kim", reason="churned")
    with pytest.raises(TenantError, match="can only be erased"):
        model.set_state(removed, "acme", "active", by="kim", reason="")
    with pytest.raises(TenantError, match="no tenant"):
        model.set_state(None, "ghost", "paused", by="kim", reason="")


def test_a_secret_an_unknown_setting_or_the_tenant_id_is_never_an_override() -> None:
    assert check_overrides({"wix_site_id": "s", "poweroffice_requests_per_second": "5"}, CLASSES)
    with pytest.raises(TenantError, match="is a secret"):
        check_overrides({"wix_api_key": "k"}, CLASSES)
    with pytest.raises(TenantError, match="unknown setting"):
        check_overrides({"wix_sight_id": "s"}, CLASSES)
    with pytest.raises(TenantError, match="tenant id"):
        check_overrides({"tenant": "other"}, CLASSES)


def test_unknown_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown tenant policies: x"):
        Tenant.model_validate({**tenant().model_dump(), "policies": {"x": "y"}})


def test_settings_for_a_tenant_are_the_deployments_with_its_id_overrides_and_secrets() -> None:
    base = ExtractorSettings(wix_site_id="deployment-site", wix_poll_interval_seconds=60)
    registered = tenant(settings={"wix_site_id": "site-1", "wix_poll_interval_seconds": "5"})
    secrets = {"wix_api_key": SecretStr("k-1"), "some_other_service_secret": SecretStr("x")}
    mine = settings_for(base, registered, secrets)
    assert isinstance(mine, ExtractorSettings)
    assert (mine.tenant, mine.wix_site_id, mine.wix_poll_interval_seconds) == ("acme", "site-1", 5)
    assert mine.wix_api_key.get_secret_value() == "k-1"
    assert mine.kafka_bootstrap_servers == base.kafka_bootstrap_servers
    assert base.wix_site_id == "deployment-site"  # the deployment's settings are untouched


def test_a_bad_override_value_names_the_field_never_the_value() -> None:
    registered = tenant(settings={"poweroffice_page_size": "not-a-number"})
    with pytest.raises(TenantError) as refused:
        settings_for(ExtractorSettings(), registered, {})
    assert "poweroffice_page_size" in str(refused.value)
    assert "not-a-number" not in str(refused.value)


def test_a_registration_round_trips_through_its_avro_datum() -> None:
    from services.core.codec import default_codec

    codec = default_codec()
    registered = tenant(settings={"wix_site_id": "s"}, credentials_ref="secret:acme")
    decoded = Tenant.from_datum(
        codec.decode(codec.encode("Tenant", registered.to_datum()), "Tenant")
    )
    assert decoded == registered

"""WixClient against the Wix simulator over real HTTP: operations, errors, retries, budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.client import (
    ApiKeyAuth,
    AppAuth,
    DuplicateContactError,
    RequestNotSentError,
    WixClient,
)
from services.connectors.wix.models import Contact, primary_email, primary_phone
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget
from services.core.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
)

EMAIL = "kari.nordmann@example.com"
PHONE = "41234567"


@pytest.fixture(autouse=True)
def _reset(sim: WixSimulator) -> None:
    sim.reset()


@pytest.fixture
def admin(server: ServerThread) -> Iterator[WixAdmin]:
    with WixAdmin(server.url) as helper:
        yield helper


Calls = list[tuple[str, str, int, float]]


@pytest.fixture
def calls() -> Calls:
    return []


def make_client(
    sim: WixSimulator, server: ServerThread, calls: Calls | None = None, **kwargs: Any
) -> WixClient:
    kwargs.setdefault("backoff_initial_seconds", 0.01)
    kwargs.setdefault("backoff_max_seconds", 0.05)
    kwargs.setdefault("timeout_seconds", 2.0)
    return WixClient(
        ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id),
        kwargs.pop("budget", ApiBudget("wix-test", 0)),
        base_url=server.url,
        on_request=(lambda *args: calls.append(args)) if calls is not None else None,
        **kwargs,
    )


@pytest.fixture
def client(sim: WixSimulator, server: ServerThread, calls: Calls) -> Iterator[WixClient]:
    with make_client(sim, server, calls) as made:
        yield made


def new_contact(client: WixClient, email: str = EMAIL, **extra: Any) -> Contact:
    return client.create(
        {
            "info.name.first": "Kari",
            "info.name.last": "Nordmann",
            "info.emails[primary].email": email,
            "info.phones[primary].phone": PHONE,
        },
        phone_country="NO",
        **extra,
    )


# -- operations -----------------------------------------------------------------------------


def test_create_get_delete(client: WixClient, calls: Calls):
    created = new_contact(client)
    assert created.revision == 1
    assert primary_email(created) == EMAIL and primary_phone(created) == PHONE
    fetched = client.get(created.id)
    assert fetched.contact == created and not fetched.merged
    projected = client.get(created.id, fieldsets=["BASIC"]).contact
    assert projected.first_name == "Kari" and projected.info.emails is None
    client.delete(created.id)
    with pytest.raises(NotFoundError) as missing:
        client.get(created.id)
    assert missing.value.error_code == "CONTACT_NOT_FOUND" and missing.value.system == "wix"
    with pytest.raises(NotFoundError):
        client.delete(created.id)
    assert [(c[0], c[1], c[2]) for c in calls] == [
        ("wix", "create", 200),
        ("wix", "get", 200),
        ("wix", "get", 200),
        ("wix", "delete", 200),
        ("wix", "get", 404),
        ("wix", "delete", 404),
    ]
    assert all(c[3] >= 0 for c in calls)


def test_create_duplicate_raises_typed_error_without_personal_data(client: WixClient):
    existing = new_contact(client)
    with pytest.raises(DuplicateContactError) as caught:
        new_contact(client, email=EMAIL.upper())
    error = caught.value
    assert isinstance(error, ConflictError)
    assert error.duplicate_contact_id == existing.id
    assert error.error_code == "DUPLICATE_CONTACT_EXISTS" and error.status == 409
    assert error.data == {"duplicateContactId": existing.id}
    assert "example.com" not in str(error) and "@" not in repr(error.args)


def test_update_changes_only_primary_items_and_keeps_others(client: WixClient, admin: WixAdmin):
    [seeded] = admin.seed(
        [
            {
                "info": {
                    "name": {"first": "Kari", "last": "Nordmann"},
                    "emails": {
                        "items": [
                            {"tag": "WORK", "email": "work@example.com"},
                            {"tag": "HOME", "email": "home@example.com", "primary": True},
                        ]
                    },
                    "phones": {
                        "items": [
                            {"tag": "MOBILE", "countryCode": "NO", "phone": PHONE, "primary": True},
                            {"tag": "FAX", "phone": "22222222"},
                        ]
                    },
                    "company": "Acme",
                }
            }
        ]
    )
    current = client.get(seeded["id"]).contact
    updated = client.update(
        current,
        {
            "info.name.last": "Hansen",
            "info.emails[primary].email": "new@example.com",
            "info.phones[primary].phone": "98765432",
        },
    )
    assert updated.revision == current.revision + 1
    assert (updated.first_name, updated.last_name) == ("Kari", "Hansen")
    emails = {e.tag: (e.email, e.primary) for e in updated.emails}
    assert emails == {"WORK": ("work@example.com", False), "HOME": ("new@example.com", True)}
    # read-only item ids are not sent back: an unchanged item keeps its id (matched by value)
    old = {e.tag: e.id for e in current.emails}
    assert {e.tag: e.id for e in updated.emails}["WORK"] == old["WORK"]
    phones = {p.tag: (p.phone, p.primary) for p in updated.phones}
    assert phones == {"MOBILE": ("98765432", True), "FAX": ("22222222", False)}
    assert updated.primary_info is not None
    assert updated.primary_info.phone == "98765432"
    assert updated.model_extra is not None and updated.model_extra["source"]
    assert admin.contact(seeded["id"])["info"]["company"] == "Acme"


def test_update_stale_revision_is_a_conflict(client: WixClient, admin: WixAdmin):
    current = new_contact(client)
    admin.edit(current.id, {"name": {"first": "Edited", "last": "InDashboard"}})
    with pytest.raises(ConflictError) as caught:
        client.update(current, {"info.name.first": "Mine"})
    assert caught.value.error_code == "CONTACT_ALREADY_CHANGED"
    assert not isinstance(caught.value, DuplicateContactError)
    assert caught.value.retriable is False


def test_update_clearing_the_last_identifier_is_rejected(client: WixClient):
    current = client.create({"info.emails[primary].email": EMAIL})
    with pytest.raises(ValidationError) as caught:
        client.update(current, {"info.emails[primary].email": None})
    assert caught.value.error_code == "INSUFFICIENT_CONTACT_DATA"
    assert (
        client.update(
            current, {"info.emails[primary].email": None, "info.name.first": "Kari"}
        ).emails
        == []
    )


def test_query_iterates_all_pages_sorted_by_creation(
    client: WixClient, admin: WixAdmin, calls: Calls
):
    seeded = admin.seed(
        [
            {
                "createdDate": f"2024-01-01T00:00:{i:02d}.000Z",
                "updatedDate": f"2024-03-01T00:{i:02d}:00.000Z",
                "info": {"name": {"first": f"P{i}"}},
            }
            for i in range(25)
        ]
    )
    everyone = list(client.iter_query(page_size=10))
    assert [c.id for c in everyone] == [s["id"] for s in seeded]
    assert [c[1] for c in calls] == ["query"] * 3
    since = list(client.iter_updated_since("2024-03-01T00:20:00.000Z", page_size=2))
    assert [c.id for c in since] == [s["id"] for s in seeded[21:]]
    inclusive = list(client.iter_updated_since("2024-03-01T00:20:00.000Z", inclusive=True))
    assert len(inclusive) == 5
    page = client.query_page(limit=5, offset=20)
    assert (page.count, page.offset, page.total) == (5, 20, 25)
    with pytest.raises(ValueError):
        client.query_page(limit=1001)


def test_find_by_email_and_by_extended_field(client: WixClient):
    key = client.find_or_create_extended_field("tether-link-id")
    assert key == "custom.tether-link-id"
    assert client.find_or_create_extended_field("tether-link-id") == key
    linked = new_contact(client, extended_fields={key: "link-1"})
    new_contact(client, email="someone.else@example.com", extended_fields={key: "link-2"})
    assert [c.id for c in client.find_by_email(" KARI.nordmann@example.com")] == [linked.id]
    assert [c.id for c in client.find_by_extended_field(key, "link-1")] == [linked.id]
    assert client.find_by_extended_field(key, "missing") == []
    relinked = client.update(linked, {}, extended_fields={key: "link-9"})
    assert relinked.extended_fields[key] == "link-9"
    unlinked = client.update(relinked, {}, extended_fields={key: None})
    assert key not in unlinked.extended_fields
    assert unlinked.extended_fields["contacts.displayByFirstName"] == "Kari Nordmann"
    assert key not in client.get(linked.id).contact.extended_fields


def test_merge_and_get_of_merged_id(client: WixClient):
    target = new_contact(client)
    source = new_contact(client, email="second@example.com")
    merged = client.merge(target.id, target.revision, [source.id])
    assert {e.email for e in merged.emails} == {EMAIL, "second@example.com"}
    result = client.get(source.id)
    assert result.merged and result.contact.id == target.id


# -- authentication -------------------------------------------------------------------------


def test_app_credentials_token_exchange_and_renewal(
    sim: WixSimulator, server: ServerThread, calls: Calls
):
    auth = AppAuth(
        app_id=sim.app_id, app_secret=SecretStr(sim.app_secret), instance_id=sim.instance_id
    )
    with WixClient(
        auth, ApiBudget("wix-test", 0), base_url=server.url, on_request=lambda *a: calls.append(a)
    ) as app_client:
        created = app_client.create({"info.name.first": "App"})
        assert created.model_extra is not None
        assert created.model_extra["source"]["sourceType"] == "WIX_APP"
        app_client.get(created.id)
        sim.expire_tokens()  # server-side revocation: the client renews once on 401
        app_client.get(created.id)
    assert [(c[1], c[2]) for c in calls] == [
        ("token", 200),
        ("create", 200),
        ("get", 200),
        ("get", 401),
        ("token", 200),
        ("get", 200),
    ]


def test_token_renewed_before_expiry(calls: Calls):
    short = WixSimulator(rate_limit=0, token_ttl_seconds=1)
    try:
        with short.server() as running:
            auth = AppAuth(
                app_id=short.app_id,
                app_secret=SecretStr(short.app_secret),
                instance_id=short.instance_id,
            )
            with WixClient(
                auth, ApiBudget("t", 0), base_url=running.url, on_request=lambda *a: calls.append(a)
            ) as app_client:
                app_client.query_page(limit=1)
                time.sleep(0.93)  # inside the renewal margin (10% of 1 s), before expiry
                app_client.query_page(limit=1)
    finally:
        short.close()
    assert [(c[1], c[2]) for c in calls] == [
        ("token", 200),
        ("query", 200),
        ("token", 200),
        ("query", 200),
    ]


def test_bad_credentials_and_missing_permission(sim: WixSimulator, server: ServerThread):
    bad_app = AppAuth(
        app_id=sim.app_id, app_secret=SecretStr("wrong-secret"), instance_id=sim.instance_id
    )
    bad = WixClient(bad_app, ApiBudget("t", 0), base_url=server.url)
    with bad, pytest.raises(AuthenticationError) as caught:
        bad.query_page()
    assert "wrong-secret" not in str(caught.value)
    bad_key = ApiKeyAuth(api_key=SecretStr("not-the-key"), site_id=sim.site_id)
    bad = WixClient(bad_key, ApiBudget("t", 0), base_url=server.url)
    with bad, pytest.raises(AuthenticationError):
        bad.query_page()
    reader = ApiKeyAuth(api_key=SecretStr(sim.read_only_api_key or ""), site_id=sim.site_id)
    with WixClient(reader, ApiBudget("t", 0), base_url=server.url) as read_only:
        assert read_only.query_page().contacts == []
        with pytest.raises(PermissionDeniedError):
            read_only.create({"info.name.first": "X"})
    assert "not-the-key" not in repr(bad_key) and "wrong-secret" not in repr(bad_app)


# -- faults and retries ---------------------------------------------------------------------


def test_idempotent_calls_retry_5xx_and_timeouts(
    sim: WixSimulator, server: ServerThread, admin: WixAdmin, calls: Calls
):
    budget = ApiBudget("wix-test", 0)
    # The client timeout leaves room for a loaded CI machine; the injected stall exceeds it 3x.
    with make_client(sim, server, calls, budget=budget, timeout_seconds=1.0) as client:
        contact = new_contact(client)
        admin.add_fault(
            kind="status", status=503, path="/contacts/v4/contacts/", method="GET", times=2
        )
        assert client.get(contact.id).contact.id == contact.id
        admin.add_fault(kind="timeout", seconds=3.0, path="/query", times=1)
        assert client.query_page().total == 1
        admin.add_fault(kind="drop", path="/contacts/v4/contacts/", method="PATCH", times=1)
        assert client.update(contact, {"info.name.first": "Retried"}).revision == 2
        admin.add_fault(kind="status", status=500, method="DELETE", times=1)
        client.delete(contact.id)
    statuses = [(c[1], c[2]) for c in calls]
    assert statuses == [
        ("create", 200),
        ("get", 503),
        ("get", 503),
        ("get", 200),
        ("query", 0),
        ("query", 200),
        ("update", 0),
        ("update", 200),
        ("delete", 500),
        ("delete", 200),
    ]
    assert budget.acquired == len(calls)  # every attempt took a permit


def test_retries_are_capped(sim: WixSimulator, server: ServerThread, admin: WixAdmin, calls: Calls):
    admin.add_fault(kind="status", status=502, path="/query")
    client = make_client(sim, server, calls, max_attempts=3)
    with client, pytest.raises(ServerError) as caught:
        client.query_page()
    assert caught.value.retriable and caught.value.status == 502
    assert len(calls) == 3


def test_create_is_never_blindly_retried(
    sim: WixSimulator, server: ServerThread, admin: WixAdmin, calls: Calls
):
    with make_client(sim, server, calls, timeout_seconds=1.0) as client:
        admin.add_fault(
            kind="status", status=503, path="/contacts/v4/contacts$", method="POST", times=1
        )
        with pytest.raises(ServerError):
            new_contact(client)
        admin.add_fault(kind="drop", path="/contacts/v4/contacts$", method="POST", times=1)
        with pytest.raises(TransportError) as dropped:
            new_contact(client)
        assert not isinstance(dropped.value, RequestNotSentError)
        assert admin.contacts() == []  # faults hit before the store: nothing was created
        created = new_contact(client)
    # a delete that timed out but took effect is done when the retry finds it gone
    admin.add_fault(kind="latency", seconds=2.0, method="DELETE", times=1)
    with make_client(
        sim,
        server,
        calls,
        timeout_seconds=1.0,
        backoff_initial_seconds=2.2,
        backoff_max_seconds=2.2,
    ) as client:
        client.delete(created.id)
    assert admin.contacts() == []
    assert [(c[1], c[2]) for c in calls] == [
        ("create", 503),
        ("create", 0),
        ("create", 200),
        ("delete", 0),
        ("delete", 404),
    ]


def test_create_retried_when_the_request_never_left(sim: WixSimulator, calls: Calls):
    auth = ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id)
    # nothing listens on this port: connect refused is provably "not sent"
    client = WixClient(
        auth,
        ApiBudget("t", 0),
        base_url="http://127.0.0.1:9",
        on_request=lambda *a: calls.append(a),
        max_attempts=2,
        backoff_initial_seconds=0.01,
    )
    with client, pytest.raises(RequestNotSentError) as caught:
        client.create({"info.name.first": "X"})
    assert caught.value.retriable
    assert [(c[1], c[2]) for c in calls] == [("create", 0), ("create", 0)]


def test_429_is_honoured_and_never_reaches_the_caller(
    sim: WixSimulator, server: ServerThread, admin: WixAdmin, calls: Calls
):
    budget = ApiBudget("wix-test", 0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(min(seconds, 0.01))

    admin.add_fault(kind="rate_limit", path="/contacts/v4/contacts$", times=2)
    with make_client(
        sim, server, calls, budget=budget, sleep=sleep, rate_limit_wait_seconds=0.5
    ) as client:
        created = new_contact(client)  # 429 means "not processed": even a create is resent
    assert [(c[1], c[2]) for c in calls] == [("create", 429), ("create", 429), ("create", 200)]
    assert budget.throttled_by_api == 2
    assert len(slept) == 2 and all(0.5 <= s <= 1.0 for s in slept)  # no Retry-After: default
    assert admin.contacts()[0]["id"] == created.id


def test_real_server_429_with_retry_after(
    sim: WixSimulator, server: ServerThread, admin: WixAdmin, calls: Calls
):
    admin.rate_limit(limit=2, window_seconds=1.0)
    with make_client(sim, server, calls) as client:
        started = time.monotonic()
        for _ in range(4):
            client.query_page(limit=1)
        elapsed = time.monotonic() - started
    assert [c[2] for c in calls].count(200) == 4
    assert 429 in [c[2] for c in calls]
    assert elapsed >= 0.9  # waited for the window (Retry-After: 1)


def test_rate_limit_retries_are_capped(sim: WixSimulator, server: ServerThread, admin: WixAdmin):
    admin.add_fault(kind="rate_limit", path="/query")
    client = make_client(
        sim, server, max_rate_limit_retries=2, rate_limit_wait_seconds=0.0, sleep=lambda s: None
    )
    with client, pytest.raises(RateLimitedError) as caught:
        client.query_page()
    assert caught.value.retriable


def test_client_side_budget_paces_requests(sim: WixSimulator, server: ServerThread):
    budget = ApiBudget("wix-paced", requests=5, per_seconds=0.5)
    with make_client(sim, server, budget=budget) as client:
        started = time.monotonic()
        for _ in range(8):
            client.query_page(limit=1)
        elapsed = time.monotonic() - started
    assert budget.acquired == 8
    assert elapsed >= 0.45 and budget.waited_seconds > 0


def test_no_personal_data_or_secret_in_logs(
    sim: WixSimulator, server: ServerThread, admin: WixAdmin, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="services.connectors.wix")
    admin.add_fault(kind="status", status=503, path="/query", times=1)
    with make_client(sim, server) as client:
        new_contact(client)
        client.find_by_email(EMAIL)
        with pytest.raises(DuplicateContactError):
            new_contact(client)
    text = caplog.text
    assert "retrying" in text
    for secret in (EMAIL, PHONE, sim.api_key, "example.com"):
        assert secret not in text


def test_create_whose_answer_was_lost_is_found_again(
    sim: WixSimulator, server: ServerThread, admin: WixAdmin, calls: Calls
):
    """The loader's recovery path: the create took effect, its answer never arrived."""
    with make_client(sim, server, calls) as client:
        key = client.find_or_create_extended_field("tether-link-id")
        admin.add_fault(kind="lose_response", status=0, path="/contacts/v4/contacts$", times=1)
        with pytest.raises(TransportError):
            new_contact(client, extended_fields={key: "link-7"})
        [stored] = admin.contacts()
        assert [c.id for c in client.find_by_extended_field(key, "link-7")] == [stored["id"]]
        with pytest.raises(DuplicateContactError) as caught:
            new_contact(client, extended_fields={key: "link-7"})
        assert caught.value.duplicate_contact_id == stored["id"]
    assert [c[1:3] for c in calls if c[1] == "create"] == [("create", 0), ("create", 409)]


def test_one_rule_builds_wix_credentials_from_settings() -> None:
    from pydantic import SecretStr

    from services.connectors.wix.client import ApiKeyAuth, AppAuth, auth_from_settings
    from services.core.errors import ConfigurationError
    from services.core.settings import WixSettings

    key = auth_from_settings(WixSettings(wix_api_key=SecretStr("k"), wix_site_id="site"))
    assert isinstance(key, ApiKeyAuth) and key.site_id == "site"
    app = auth_from_settings(
        WixSettings(wix_app_id="a", wix_app_secret=SecretStr("s"), wix_instance_id="i")
    )
    assert isinstance(app, AppAuth) and app.instance_id == "i"
    with pytest.raises(ConfigurationError, match="TETHER_WIX_SITE_ID is required"):
        auth_from_settings(WixSettings(wix_api_key=SecretStr("k")))
    with pytest.raises(ConfigurationError, match="TETHER_WIX_APP_SECRET missing"):
        auth_from_settings(WixSettings(wix_app_id="a", wix_instance_id="i"))
    with pytest.raises(ConfigurationError, match="Wix credentials missing"):
        auth_from_settings(WixSettings())

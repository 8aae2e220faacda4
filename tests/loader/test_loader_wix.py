"""The loader against the Wix simulator over HTTP, with real Kafka: creates, updates, deletes,
duplicates, conflicts, lost responses and re-sent commands."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.connectors.simkit import FaultRule
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.connector import (
    DESCRIPTOR,
    KEYLESS_CREATE_AMBIGUOUS,
    LINK_FIELD_REFUSED_SECONDS,
    LinkFieldMetrics,
    WixTarget,
)
from services.core.budget import ApiBudget
from services.core.errors import ConflictError
from services.loader.plan import Action, failure
from services.loader.targets import CommandTarget
from tests.loader.support import (
    LoaderHarness,
    Stack,
    new_id,
    record_of,
    wix_create,
    wix_update,
)

CREATE_PATH = r"^/contacts/v4/contacts$"
CONTACT_PATH = r"^/contacts/v4/contacts/[^/]+$"


def seed(stack: Stack, info: dict[str, object]) -> dict[str, object]:
    return stack.wix_admin.seed([{"info": info}])[0]


def test_create_reports_the_new_contact(loader: LoaderHarness, sims: Stack) -> None:
    command = loader.send(
        wix_create(
            {
                "info.name.first": "Ola",
                "info.name.last": "Nordmann",
                "info.emails[primary].email": "ola@example.no",
                "info.phones[primary].phone": "+4791234567",
            }
        )
    )
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "CREATED"
    assert outcome["action"] == "CREATE"
    assert outcome["link_id"] == command.link_id
    contacts = sims.wix_admin.contacts()
    assert [c["id"] for c in contacts] == [outcome["target_id"]]
    record = record_of(outcome)
    assert record is not None
    assert record["info"]["name"] == {"first": "Ola", "last": "Nordmann"}
    assert record["primaryInfo"]["email"] == "ola@example.no"
    assert outcome["target_revision"] == "1"
    assert "tether-link-id" not in str(contacts[0])  # a natural key exists: no link field


def test_create_of_an_existing_email_links_the_existing_contact(
    loader: LoaderHarness, sims: Stack
) -> None:
    existing = seed(
        sims, {"name": {"first": "Kari"}, "emails": {"items": [{"email": "kari@example.no"}]}}
    )
    command = loader.send(
        wix_create({"info.name.first": "Kari", "info.emails[primary].email": "KARI@example.no "})
    )
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "LINKED_EXISTING"
    assert outcome["target_id"] == existing["id"]
    record = record_of(outcome)
    assert record is not None and record["id"] == existing["id"]
    assert len(sims.wix_admin.contacts()) == 1


def test_an_operators_create_new_contact_is_not_linked_to_the_existing_duplicate(
    loader: LoaderHarness, sims: Stack
) -> None:
    # CREATE_NEW_CONTACT: the operator wants a new contact although one has the e-mail; a lost
    # response must not create it twice (found again by its extended field).
    existing = seed(
        sims, {"name": {"first": "Kari"}, "emails": {"items": [{"email": "kari@example.no"}]}}
    )
    sims.wix.faults.add(
        FaultRule(kind="lose_response", path=CREATE_PATH, method="POST", status=0, times=1)
    )
    command = replace(
        wix_create({"info.name.first": "Kari", "info.emails[primary].email": "kari@example.no"}),
        allow_duplicates=True,
    )
    loader.send(command)
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "CREATED"
    assert outcome["target_id"] != existing["id"]
    assert len(sims.wix_admin.contacts()) == 2
    assert sims.wix_count("create") == 1  # never created twice


def test_create_without_email_or_phone_is_found_again_after_a_lost_response(
    loader: LoaderHarness, sims: Stack
) -> None:
    # The simulator creates the contact, then drops the connection: the create's outcome is
    # unknown, the client does not resend it, the loader retries the command, which looks the
    # contact up by its tether-link-id extended field first.
    sims.wix.faults.add(
        FaultRule(kind="lose_response", path=CREATE_PATH, method="POST", status=0, times=1)
    )
    command = loader.send(wix_create({"info.name.first": "Nameless", "info.name.last": "Person"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "CREATED"
    assert outcome["attempts"] == 2
    contacts = sims.wix_admin.contacts()
    assert len(contacts) == 1
    assert outcome["target_id"] == contacts[0]["id"]
    items = contacts[0]["info"]["extendedFields"]["items"]
    assert items["custom.tether-link-id"] == command.link_id
    assert sims.wix_count("create") == 1  # never created twice


def test_create_with_a_5xx_after_the_write_is_found_again(
    loader: LoaderHarness, sims: Stack
) -> None:
    sims.wix.faults.add(
        FaultRule(kind="lose_response", path=CREATE_PATH, method="POST", status=504, times=1)
    )
    command = loader.send(wix_create({"info.name.first": "Only-a-name"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "CREATED"
    assert [c["id"] for c in sims.wix_admin.contacts()] == [outcome["target_id"]]
    assert sims.wix_count("create") == 1


def test_update_changes_only_the_name_and_primary_items(loader: LoaderHarness, sims: Stack) -> None:
    contact = seed(
        sims,
        {
            "name": {"first": "Ola", "last": "Nordmann"},
            "emails": {
                "items": [
                    {"email": "ola@example.no", "tag": "MAIN", "primary": True},
                    {"email": "ola.private@example.no", "tag": "HOME"},
                ]
            },
            "phones": {
                "items": [
                    {"phone": "+4791234567", "tag": "MOBILE", "primary": True},
                    {"phone": "+4722334455", "tag": "WORK"},
                ]
            },
            "addresses": {"items": [{"tag": "HOME", "address": {"city": "Oslo"}}]},
        },
    )
    command = loader.send(
        wix_update(
            contact,
            {
                "info.name.first": "Ole",
                "info.emails[primary].email": "ole@example.no",
                "info.phones[primary].phone": "+4799887766",
            },
        )
    )
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "APPLIED"
    after = sims.wix_admin.contact(str(contact["id"]))
    assert after["info"]["name"] == {"first": "Ole", "last": "Nordmann"}
    emails = {
        (e["email"], e["tag"], e.get("primary", False)) for e in after["info"]["emails"]["items"]
    }
    assert emails == {("ole@example.no", "MAIN", True), ("ola.private@example.no", "HOME", False)}
    phones = {(p["phone"], p.get("primary", False)) for p in after["info"]["phones"]["items"]}
    assert phones == {("+4799887766", True), ("+4722334455", False)}
    assert after["info"]["addresses"]["items"][0]["address"]["city"] == "Oslo"
    assert outcome["target_revision"] == str(after["revision"])


def test_stale_revision_is_a_conflict_carrying_the_fresh_contact(
    loader: LoaderHarness, sims: Stack
) -> None:
    contact = seed(sims, {"name": {"first": "Ola", "last": "Nordmann"}})
    sims.wix_admin.edit(str(contact["id"]), {"name": {"first": "Ola", "last": "Hansen"}})
    command = loader.send(wix_update(contact, {"info.name.first": "Ole"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "CONFLICT"
    record = record_of(outcome)
    assert record is not None
    assert record["revision"] == 2 and record["info"]["name"]["last"] == "Hansen"
    assert outcome["target_revision"] == "2"
    assert sims.wix_count("update", 200) == 0 and sims.wix_count("update", 409) == 1
    assert sims.wix_admin.contact(str(contact["id"]))["info"]["name"]["first"] == "Ola"


def test_stale_revision_with_the_values_already_there_is_a_noop(
    loader: LoaderHarness, sims: Stack
) -> None:
    contact = seed(sims, {"name": {"first": "Ola", "last": "Nordmann"}})
    sims.wix_admin.edit(str(contact["id"]), {"name": {"first": "Ole", "last": "Nordmann"}})
    command = loader.send(wix_update(contact, {"info.name.first": "Ole"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "NOOP"
    assert sims.wix_count("update", 200) == 0


def test_update_without_a_target_record_reads_the_contact_first(
    loader: LoaderHarness, sims: Stack
) -> None:
    contact = seed(sims, {"name": {"first": "Ola"}})
    fresh = loader.send(wix_update(contact, {"info.name.first": "Ole"}, target_record=None))
    assert loader.wait_outcome(fresh.command_id)["status"] == "APPLIED"
    stale = loader.send(wix_update(contact, {"info.name.first": "Per"}, target_record=None))
    assert loader.wait_outcome(stale.command_id)["status"] == "CONFLICT"  # revision 1 is gone
    assert sims.wix_count("update", 200) == 1


def test_same_command_twice_and_after_a_restart_writes_once(
    loader: LoaderHarness, sims: Stack, kafka_bootstrap: str
) -> None:
    contact = seed(sims, {"name": {"first": "Ola"}})
    update = wix_update(contact, {"info.name.first": "Ole"})
    create = wix_create({"info.name.first": "Twice", "info.emails[primary].email": "t@example.no"})
    for command in (update, create, update, create):
        loader.send(command)
    loader.wait_outcome(update.command_id)
    loader.wait_outcome(create.command_id)
    marker = loader.send(wix_create({"info.name.first": "Marker"}))  # after the copies
    loader.wait_outcome(marker.command_id)
    loader.stop()

    again = LoaderHarness(sims, kafka_bootstrap, loader.prefix).start()
    try:
        for command in (update, create):
            again.send(command)
        marker2 = again.send(wix_create({"info.name.first": "Marker2"}))
        again.wait_outcome(marker2.command_id)
        assert len(again.outcomes_for(update.command_id)) == 1
        assert len(again.outcomes_for(create.command_id)) == 1
        assert sims.wix_count("update", None) == 1  # one write, not even a refused second one
        assert sims.wix_count("create", None) == 3  # Twice, Marker, Marker2
        assert again.service is not None
        assert again.service.metrics.duplicates._value.get() == 2
    finally:
        again.close()


def test_resent_commands_without_a_recorded_outcome_write_nothing_twice(
    loader: LoaderHarness, sims: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The window between a write and its outcome: a loader that does not know the outcome
    (empty outcomes topic) re-applies the command; the revision guard, the duplicate rule and
    the link-id lookup make it a no-op."""
    contact = seed(sims, {"name": {"first": "Ola"}})
    update = wix_update(contact, {"info.name.first": "Ole"})
    keyed = wix_create({"info.name.first": "Kari", "info.emails[primary].email": "k@example.no"})
    nameless = wix_create({"info.name.last": "Nokey"})
    first = {
        c.command_id: loader.wait_outcome(loader.send(c).command_id)
        for c in (update, keyed, nameless)
    }

    other = LoaderHarness(sims, kafka_bootstrap, topic_prefix + "b").start()
    try:
        second = {
            c.command_id: other.wait_outcome(other.send(c).command_id)
            for c in (update, keyed, nameless)
        }
    finally:
        other.close()
    assert second[update.command_id]["status"] == "NOOP"
    assert second[keyed.command_id]["status"] == "LINKED_EXISTING"
    assert second[keyed.command_id]["target_id"] == first[keyed.command_id]["target_id"]
    assert second[nameless.command_id]["status"] == "CREATED"
    assert second[nameless.command_id]["target_id"] == first[nameless.command_id]["target_id"]
    assert len(sims.wix_admin.contacts()) == 3
    assert sims.wix_count("update", 200) == 1


def test_delete_and_delete_of_a_missing_contact(loader: LoaderHarness, sims: Stack) -> None:
    contact = seed(sims, {"name": {"first": "Gone"}})
    nothing = loader.send(wix_update(contact, {}))
    assert loader.wait_outcome(nothing.command_id)["status"] == "NOOP"  # nothing to write
    delete = replace(wix_update(contact, {}), action=Action.DELETE)
    again = replace(delete, command_id=new_id())
    assert loader.wait_outcome(loader.send(delete).command_id)["status"] == "APPLIED"
    assert loader.wait_outcome(loader.send(again).command_id)["status"] == "NOOP"
    assert sims.wix_admin.contacts() == []


def test_transient_5xx_is_retried_then_applied(loader: LoaderHarness, sims: Stack) -> None:
    contact = seed(sims, {"name": {"first": "Ola"}})
    # The client tries twice itself (loader_client_max_attempts=2); the third 503 makes the
    # loader retry the command.
    sims.wix.faults.add(
        FaultRule(kind="status", path=CONTACT_PATH, method="PATCH", status=503, times=3)
    )
    command = loader.send(wix_update(contact, {"info.name.first": "Ole"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "APPLIED"
    assert outcome["attempts"] == 2
    assert sims.wix_count("update", 200) == 1
    assert loader.dead_letters() == []


def test_permanent_400_is_rejected_with_a_dead_letter(loader: LoaderHarness, sims: Stack) -> None:
    command = loader.send(
        wix_create({"info.name.first": "Bad", "info.emails[primary].email": "not-an-email"})
    )
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "REJECTED"
    assert outcome["error_code"]
    assert "not-an-email" not in (outcome["error_message"] or "")
    (dead,) = loader.wait_dead_letters(1)
    assert dead["stage"] == "loader" and dead["error_class"] == "ValidationError"
    assert dead["source_topic"] == f"{loader.prefix}.commands.wix.contacts"
    assert sims.wix_admin.contacts() == []


def test_retries_exhausted_fail_with_a_dead_letter(
    sims: Stack, kafka_bootstrap: str, topic_prefix: str
) -> None:
    harness = LoaderHarness(
        sims, kafka_bootstrap, topic_prefix, loader_retry_max_attempts=2
    ).start()
    try:
        contact = seed(sims, {"name": {"first": "Ola"}})
        sims.wix.faults.add(FaultRule(kind="status", path=CONTACT_PATH, method="PATCH", status=503))
        command = harness.send(wix_update(contact, {"info.name.first": "Ole"}))
        outcome = harness.wait_outcome(command.command_id)
        assert outcome["status"] == "FAILED"
        assert outcome["attempts"] == 2
        assert outcome["error_code"] == "ServerError"
        (dead,) = harness.wait_dead_letters(1)
        assert dead["attempts"] == 2
    finally:
        harness.close()


def test_a_merged_away_contact_is_not_written(loader: LoaderHarness, sims: Stack) -> None:
    source = seed(sims, {"name": {"first": "Source"}})
    target = seed(sims, {"name": {"first": "Target"}})
    client = WixClient(
        ApiKeyAuth(api_key=SecretStr(sims.wix.api_key), site_id=sims.wix.site_id),
        ApiBudget("test", 0),
        base_url=sims.wix_server.url,
    )
    with client:
        client.merge(str(target["id"]), int(str(target["revision"])), [str(source["id"])])
    command = loader.send(wix_update(source, {"info.name.first": "Ole"}, target_record=None))
    outcome = loader.wait_outcome(command.command_id)
    assert (outcome["status"], outcome["error_code"]) == ("FAILED", "CONTACT_MERGED")
    assert sims.wix_count("update", None) == 0


# -- keyless contacts when the Extended Fields API refuses (issue 11, item 5) -------------------

EXTENDED_FIELDS_PATH = r"^/contacts/v4/extended-fields$"


def test_keyless_creates_reach_wix_when_extended_fields_are_refused(
    loader: LoaderHarness, sims: Stack
) -> None:
    # An API key without the extended-fields permission: 403 on the field definition. The
    # refusal costs one call (cached), every keyless record is still created (fallback).
    sims.wix.extended_fields_refused = 403
    commands = [
        loader.send(wix_create({"info.name.first": "Nameless", "info.name.last": f"No{i}"}))
        for i in range(3)
    ]
    outcomes = [loader.wait_outcome(c.command_id) for c in commands]
    assert [o["status"] for o in outcomes] == ["CREATED"] * 3
    contacts = {c["id"]: c for c in sims.wix_admin.contacts()}
    assert sorted(contacts) == sorted(o["target_id"] for o in outcomes)
    assert all("custom." not in str(c["info"].get("extendedFields")) for c in contacts.values())
    assert sims.wix_count("extended_fields", 403) == 1
    assert sims.wix_count("extended_fields", None) == 1


def test_keyless_fallback_create_is_found_again_after_a_lost_response(
    loader: LoaderHarness, sims: Stack
) -> None:
    sims.wix.extended_fields_refused = 403
    older = {
        "createdDate": "2024-01-01T00:00:00.000Z",
        "info": {"name": {"first": "Nameless", "last": "Person"}},
    }
    sims.wix_admin.seed([older])  # a name-only namesake created long before the change: not ours
    sims.wix.faults.add(
        FaultRule(kind="lose_response", path=CREATE_PATH, method="POST", status=0, times=1)
    )
    command = loader.send(wix_create({"info.name.first": "Nameless", "info.name.last": "Person"}))
    outcome = loader.wait_outcome(command.command_id)
    assert outcome["status"] == "CREATED"
    assert outcome["attempts"] == 2
    assert len(sims.wix_admin.contacts()) == 2  # the seeded one and ours: never a third
    assert sims.wix_count("create") == 1


def test_keyless_creates_survive_extended_fields_404_and_5xx(
    loader: LoaderHarness, sims: Stack
) -> None:
    for status in (404, 503):
        sims.wix.faults.clear()
        sims.wix.faults.add(
            FaultRule(kind="status", path=EXTENDED_FIELDS_PATH, status=status, method="POST")
        )
        command = loader.send(
            wix_create({"info.name.first": "Keyless", "info.name.last": str(status)})
        )
        assert loader.wait_outcome(command.command_id, timeout=40.0)["status"] == "CREATED"
    names = sorted(c["info"]["name"]["last"] for c in sims.wix_admin.contacts())
    assert names == ["404", "503"]


def test_an_extended_fields_refusal_is_cached_logged_once_and_exported(
    sims: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    sims.wix.extended_fields_refused = 403
    registry = CollectorRegistry()
    clock = [0.0]
    auth = ApiKeyAuth(api_key=SecretStr(sims.wix.api_key), site_id=sims.wix.site_id)
    with WixClient(auth, ApiBudget("t", 0), base_url=sims.wix_server.url) as client:
        contacts = WixTarget(client, metrics=LinkFieldMetrics(registry), clock=lambda: clock[0])
        target = CommandTarget(DESCRIPTOR, {"contacts": contacts})
        with caplog.at_level(logging.WARNING, logger="tether.loader.wix"):
            for i in range(3):
                result = target.apply(wix_create({"info.name.first": f"K{i}"}))
                assert result.status.value == "CREATED"
        warnings = [r.getMessage() for r in caplog.records if r.name == "tether.loader.wix"]
        assert len(warnings) == 1 and "extended fields permission missing" in warnings[0]
        assert sims.wix_count("extended_fields", 403) == 1
        gauge = "tether_loader_wix_link_field_unavailable"
        assert registry.get_sample_value(gauge, {"reason": "permission_denied"}) == 1
        created = "tether_loader_wix_fallback_creates_total"
        assert registry.get_sample_value(created, {"how": "created"}) == 3
        # The refusal is asked again only after its period; then the permission is there.
        sims.wix.extended_fields_refused = None
        clock[0] = LINK_FIELD_REFUSED_SECONDS + 1
        result = target.apply(wix_create({"info.name.first": "Later"}))
        assert result.record is not None
        assert "custom.tether-link-id" in result.record["info"]["extendedFields"]["items"]
        assert registry.get_sample_value(gauge, {"reason": "permission_denied"}) == 0
        assert sims.wix_count("extended_fields", None) == 2


def test_ambiguous_keyless_fallback_is_rejected_for_review(sims: Stack) -> None:
    sims.wix.extended_fields_refused = 403
    twin = {"info": {"name": {"first": "Twin"}}}
    sims.wix_admin.seed([twin, twin])  # two name-only namesakes, created just now
    auth = ApiKeyAuth(api_key=SecretStr(sims.wix.api_key), site_id=sims.wix.site_id)
    with (
        WixClient(auth, ApiBudget("t", 0), base_url=sims.wix_server.url) as client,
        pytest.raises(ConflictError) as refused,
    ):
        CommandTarget(DESCRIPTOR, {"contacts": WixTarget(client)}).apply(
            wix_create({"info.name.first": "Twin"})
        )
    assert refused.value.error_code == KEYLESS_CREATE_AMBIGUOUS
    assert failure(refused.value).status.value == "REJECTED"
    assert len(sims.wix_admin.contacts()) == 2  # nothing created

"""Link state persists as JSON and ids are deterministic."""

from __future__ import annotations

import json

from services.mapper.domain import (
    Decision,
    DecisionKind,
    Link,
    Policy,
    link_id_for,
    on_member_change,
)

from .support import T0, World, employee, po_change, po_ref, wix_contact


def test_link_round_trips_through_json() -> None:
    decision = on_member_change(None, po_change("employees", employee(), T0), [], Policy(), T0)
    link = decision.link
    assert link is not None
    document = link.model_dump(mode="json")
    json.dumps(document)  # plain JSON
    assert Link.model_validate(document) == link
    assert Link.from_json(link.to_json()) == link
    for command in decision.commands:
        json.dumps(command.model_dump(mode="json"))
    json.dumps(decision.model_dump(mode="json"))


def test_link_id_is_derived_from_tenant_and_first_member() -> None:
    ref = po_ref("employees", "1")
    assert link_id_for(ref) == link_id_for(po_ref("employees", "1"))
    assert link_id_for(ref) != link_id_for(po_ref("customers", "1"))
    assert link_id_for(ref) != link_id_for(ref.model_copy(update={"tenant": "t2"}))


def test_same_input_same_decision() -> None:
    change = po_change("employees", employee(), T0)
    first = on_member_change(None, change, [], Policy(), T0)
    second = on_member_change(None, change, [], Policy(), T0)
    assert first == second
    assert first.commands[0].command_id == second.commands[0].command_id
    other = on_member_change(
        None, change.model_copy(update={"event_id": "another"}), [], Policy(), T0
    )
    assert other.commands[0].command_id != first.commands[0].command_id


# A link document as the release before the hub became a role stored it in PostgreSQL
# (mapper_links.state): a customer linked to the Wix contact the engine created for it, after an
# edit of the first name in Wix.
STORED_BEFORE_HUB_ROLE = """
{
 "link_id": "ee84dc76-a3d5-57cf-a7de-469b4acf9ff1",
 "tenant": "t1",
 "status": "active",
 "status_reason": null,
 "members": [
  {
   "ref": {
    "tenant": "t1",
    "system": "poweroffice",
    "resource": "customers",
    "id": "10",
    "parent_id": null
   },
   "flow": "customers",
   "status": "active",
   "status_reason": null,
   "observed": {
    "props": {
     "email": "kari@example.no",
     "first_name": "Karin",
     "last_name": "Hansen"
    },
    "raw": {
     "EmailAddress": "kari@example.no",
     "FirstName": "Karin",
     "LastName": "Hansen"
    },
    "source_ts": "2024-05-01T12:00:04Z",
    "revision": null,
    "changed_at": {
     "email": "2024-05-01T12:00:01Z",
     "first_name": "2024-05-01T12:00:04Z",
     "last_name": "2024-05-01T12:00:01Z"
    },
    "origin": "event",
    "event_id": "po-customers-10-2024-05-01T12:00:04+00:00-upsert",
    "has_other_items": false
   },
   "pending": null,
   "written": {
    "command_id": "36db1129-c175-5c40-b567-65810e0480f6",
    "props": {
     "first_name": "Karin"
    },
    "at": "2024-05-01T12:00:04Z"
   },
   "synced": [
    "email",
    "first_name",
    "last_name"
   ],
   "rejected": {},
   "created_by_engine": false,
   "last_error": null,
   "joined_at": "2024-05-01T12:00:01Z",
   "match_keys": [
    [
     "email",
     "kari@example.no"
    ]
   ]
  },
  {
   "ref": {
    "tenant": "t1",
    "system": "wix",
    "resource": "contacts",
    "id": "c-new-1",
    "parent_id": null
   },
   "flow": "wix",
   "status": "active",
   "status_reason": null,
   "observed": {
    "props": {
     "first_name": "Karin",
     "last_name": "Hansen",
     "email": "kari@example.no",
     "phone": null
    },
    "raw": {
     "info.name.first": "Karin",
     "info.name.last": "Hansen",
     "info.emails[primary].email": "kari@example.no",
     "info.phones[primary].phone": null
    },
    "source_ts": "2024-05-01T12:00:03Z",
    "revision": 2,
    "changed_at": {
     "first_name": "2024-05-01T12:00:03Z",
     "last_name": "2024-05-01T12:00:02Z",
     "email": "2024-05-01T12:00:02Z",
     "phone": "2024-05-01T12:00:02Z"
    },
    "origin": "event",
    "event_id": "wix-c-new-1-2-2024-05-01T12:00:03+00:00-upsert",
    "has_other_items": false
   },
   "pending": null,
   "written": {
    "command_id": "4265bc81-b3be-5f57-b58d-8181b67dbf1a",
    "props": {
     "last_name": "Hansen",
     "email": "kari@example.no"
    },
    "at": "2024-05-01T12:00:02Z"
   },
   "synced": [
    "email",
    "first_name",
    "last_name",
    "phone"
   ],
   "rejected": {},
   "created_by_engine": true,
   "last_error": null,
   "joined_at": "2024-05-01T12:00:01Z",
   "match_keys": []
  }
 ],
 "base": {
  "email": "kari@example.no",
  "first_name": "Karin",
  "last_name": "Hansen",
  "phone": null
 },
 "base_ts": {
  "email": "2024-05-01T12:00:02Z",
  "first_name": "2024-05-01T12:00:04Z",
  "last_name": "2024-05-01T12:00:02Z",
  "phone": "2024-05-01T12:00:02Z"
 },
 "merged_into": null,
 "version": 6,
 "created_at": "2024-05-01T12:00:01Z",
 "updated_at": "2024-05-01T12:00:04Z"
}
"""


def test_a_link_stored_by_the_release_before_the_hub_role_still_reads_and_syncs() -> None:
    link = Link.from_json(STORED_BEFORE_HUB_ROLE)
    assert link.hub_record_id == "c-new-1"
    assert link.hub_member is not None and link.hub_member.flow == "wix"
    assert [m.key for m in link.flow_members] == ["poweroffice:customers:10"]
    assert link.hub_member.mapped == ("first_name", "last_name", "email", "phone")
    assert json.loads(link.to_json()) == json.loads(STORED_BEFORE_HUB_ROLE)
    # And it goes on syncing: a Wix edit of the stored link reaches the customer.
    world = World()
    world.shell.apply(Decision(kind=DecisionKind.NOOP, links=(link,)))  # as loaded from the store
    world.po[("customers", "10")] = {
        "Id": 10,
        "IsPerson": True,
        "FirstName": "Karin",
        "LastName": "Hansen",
        "EmailAddress": "kari@example.no",
        "IsArchived": False,
        "LastChangedDateTimeOffset": "2024-05-01T12:00:04+00:00",
    }
    world.wix["c-new-1"] = wix_contact(
        "c-new-1", first="Karin", last="Hansen", email="kari@example.no", revision=2
    )
    world.clock = 10
    world.deliver(world.wix_edit("c-new-1", last_name="Hansen-Berg"))
    world.pump()
    assert world.po[("customers", "10")]["LastName"] == "Hansen-Berg"

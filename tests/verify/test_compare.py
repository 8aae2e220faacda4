"""Verification's pure parts: the per-link verdict and the repair event (no I/O).

Links come from the mapper domain's simulated world (``tests.mapper_domain.support``), so they
are exactly what the mapper's decisions produce; the "systems" are the world's records.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from services.core.codec import AvroCodec
from services.mapper.convert import changes_from_event
from services.mapper.domain import Link
from services.verify.compare import Repair, Status, verify_link
from services.verify.events import repair_event
from tests.mapper_domain.support import World, _set_wix_props, employee


def linked() -> tuple[World, Link]:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    [link] = world.shell.links.values()
    return world, link


def records(world: World) -> dict[tuple[str, str, str], dict[str, Any]]:
    found: dict[tuple[str, str, str], dict[str, Any]] = {
        ("poweroffice", resource, record_id): record
        for (resource, record_id), record in world.po.items()
    }
    found.update({("wix", "contacts", cid): c for cid, c in world.wix.items()})
    return found


def test_a_synced_link_agrees() -> None:
    world, link = linked()
    verdict = verify_link(link, records(world))
    assert verdict is not None and verdict.status is Status.AGREE and not verdict.divergent
    assert verdict.flow == "employees"


def test_a_record_changed_behind_our_back_is_divergent_and_only_that_side_is_resent() -> None:
    world, link = linked()
    world.po[("employees", "1")]["LastName"] = "Berg"  # no stamp moves
    verdict = verify_link(link, records(world))
    assert verdict is not None and verdict.status is Status.DIVERGENT and verdict.divergent
    assert verdict.properties == ("last_name",)
    assert verdict.repairs == (Repair("poweroffice", "employees", "1"),)


def test_a_lost_write_on_the_wix_side_resends_the_wix_contact() -> None:
    world, link = linked()
    _set_wix_props(world.wix["c-new-1"], {"first_name": "Olav"})
    verdict = verify_link(link, records(world))
    assert verdict is not None and verdict.status is Status.DIVERGENT
    assert verdict.properties == ("first_name",)
    assert verdict.repairs == (Repair("wix", "contacts", "c-new-1"),)


def test_phone_forms_compare_as_the_mapper_compares_them() -> None:
    world, link = linked()
    world.po[("employees", "1")]["PhoneNumber"] = "+47 912 34 567"  # same number, other form
    verdict = verify_link(link, records(world))
    assert verdict is not None and verdict.status is Status.AGREE


def test_a_link_with_a_write_in_flight_is_being_repaired_not_divergent() -> None:
    world, link = linked()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    link = world.shell.links[link.link_id]
    assert any(m.pending is not None for m in link.members)
    verdict = verify_link(link, records(world))
    assert verdict is not None and verdict.status is Status.REPAIRING and not verdict.divergent


def test_a_record_missing_from_its_system_is_reported_missing() -> None:
    world, link = linked()
    found = records(world)
    del found[("wix", "contacts", "c-new-1")]
    verdict = verify_link(link, found)
    assert verdict is not None and verdict.status is Status.MISSING and verdict.divergent
    assert verdict.repairs == ()


def test_a_record_read_before_the_state_the_mapper_has_is_in_flux() -> None:
    world, link = linked()
    old = copy.deepcopy(world.wix["c-new-1"])
    world.deliver(world.wix_edit("c-new-1", first_name="Olav"))
    world.pump()
    found = records(world)
    found[("wix", "contacts", "c-new-1")] = old  # read before the edit the mapper has seen
    verdict = verify_link(world.shell.links[link.link_id], found)
    assert verdict is not None and verdict.status is Status.IN_FLUX and not verdict.divergent


def test_values_that_differ_where_the_mapper_agrees_with_both_records_are_stuck() -> None:
    world, link = linked()
    # Corrupt the mapper's own view so that each record equals what it observed of it but the
    # two differ: nothing a re-read could repair — it must stay visible, with no repair.
    world.po[("employees", "1")]["LastName"] = "Berg"
    po = link.flow_members[0]
    assert po.observed is not None
    observed = po.observed.model_copy(update={"props": {**po.observed.props, "last_name": "Berg"}})
    link = link.replace_member(po.key, po.model_copy(update={"observed": observed}))
    verdict = verify_link(link, records(world))
    assert verdict is not None and verdict.status is Status.DIVERGENT
    assert verdict.repairs == () and "stuck" in verdict.detail


def test_a_difference_an_operator_already_reviews_is_in_review() -> None:
    world, link = linked()
    world.po[("employees", "1")]["LastName"] = "Berg"
    verdict = verify_link(link, records(world), {"last_name"})
    assert verdict is not None and verdict.status is Status.IN_REVIEW and not verdict.divergent
    other = verify_link(link, records(world), {"email"})
    assert other is not None and other.status is Status.DIVERGENT


def test_the_repair_event_carries_the_current_state_with_its_unmoved_stamp() -> None:
    record = {**employee(), "LastChangedDateTimeOffset": "2024-05-01T12:00:01.1234567Z"}
    at = datetime(2024, 5, 2, tzinfo=datetime.now().astimezone().tzinfo)
    key, datum = repair_event("t1", "poweroffice", "employees", "1", record, extracted_at=at)
    codec = AvroCodec()
    decoded = codec.decode(codec.encode("ChangeEvent", datum), "ChangeEvent")
    [change] = changes_from_event(decoded)
    assert change.record is not None and change.record["FirstName"] == "Ola"
    assert change.source_ts.isoformat() == "2024-05-01T12:00:01.123456+00:00"
    assert decoded["origin"] == "RECONCILE" and key
    # The same state gives the same id; other content under the same stamp another one.
    again = repair_event("t1", "poweroffice", "employees", "1", record, extracted_at=at)[1]
    changed = repair_event(
        "t1", "poweroffice", "employees", "1", {**record, "LastName": "Berg"}, extracted_at=at
    )[1]
    assert again["event_id"] == datum["event_id"] != changed["event_id"]

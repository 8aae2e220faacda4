"""The Wix simulator's duplicate rule and look-ups, kept right by its indexes (over real HTTP).

The duplicate rule compares the new primary e-mail with every e-mail of the other contacts ("the
given email is used by another contact", reference §3.1) and, with no e-mail, the new primary
phone with every phone. The indexes behind it (and behind ``$eq`` look-ups by e-mail and
extended field) must follow every create, update, delete and merge.
"""

from __future__ import annotations

from typing import Any

import httpx

from services.connectors.wix.simulator import WixSimulator

C = "/contacts/v4/contacts"


def create(http: httpx.Client, info: dict[str, Any]) -> httpx.Response:
    return http.post(C, json={"info": info})


def emails(*values: str) -> dict[str, Any]:
    return {"items": [{"tag": "WORK", "email": v} for v in values]}


def phones(*values: str) -> dict[str, Any]:
    return {"items": [{"tag": "MOBILE", "countryCode": "NO", "phone": v} for v in values]}


def duplicate_of(response: httpx.Response) -> str | None:
    if response.status_code != 409:
        return None
    app = response.json()["details"]["applicationError"]
    assert app["code"] == "DUPLICATE_CONTACT_EXISTS"
    return str(app["data"]["duplicateContactId"])


def test_a_secondary_email_of_another_contact_is_a_duplicate(http: httpx.Client):
    owner = create(http, {"name": {"first": "A"}, "emails": emails("a@x.no", "Shared@X.no")})
    owner_id = owner.json()["contact"]["id"]
    response = create(http, {"name": {"first": "B"}, "emails": emails(" shared@x.NO ")})
    assert duplicate_of(response) == owner_id


def test_a_secondary_phone_of_another_contact_is_a_duplicate_when_no_email(http: httpx.Client):
    owner = create(http, {"name": {"first": "A"}, "phones": phones("41234567", "98765432")})
    owner_id = owner.json()["contact"]["id"]
    response = create(http, {"name": {"first": "B"}, "phones": phones("+47 987 65 432")})
    assert duplicate_of(response) == owner_id


def test_an_update_adding_another_contacts_secondary_email_is_a_duplicate(http: httpx.Client):
    owner = create(http, {"name": {"first": "A"}, "emails": emails("a@x.no", "b@x.no")})
    other = create(http, {"name": {"first": "C"}, "emails": emails("c@x.no")}).json()["contact"]
    response = http.patch(
        f"{C}/{other['id']}", json={"revision": 1, "info": {"emails": emails("b@x.no")}}
    )
    assert duplicate_of(response) == owner.json()["contact"]["id"]


def test_indexes_follow_update_delete_and_merge(http: httpx.Client):
    a = create(http, {"name": {"first": "A"}, "emails": emails("old@x.no")}).json()["contact"]
    # update: the old e-mail is free again, the new one is taken
    http.patch(f"{C}/{a['id']}", json={"revision": 1, "info": {"emails": emails("new@x.no")}})
    assert create(http, {"name": {"first": "B"}, "emails": emails("old@x.no")}).status_code == 200
    assert duplicate_of(create(http, {"emails": emails("new@x.no")})) == a["id"]
    # delete: free again
    assert http.delete(f"{C}/{a['id']}").status_code == 200
    assert create(http, {"name": {"first": "D"}, "emails": emails("new@x.no")}).status_code == 200
    # merge: the source's e-mail now belongs to the target, the source is gone
    t = create(http, {"name": {"first": "T"}, "emails": emails("t@x.no")}).json()["contact"]
    s = create(http, {"name": {"first": "S"}, "emails": emails("s@x.no")}).json()["contact"]
    merged = http.post(
        f"{C}/{t['id']}/merge", json={"targetContactRevision": 1, "sourceContactIds": [s["id"]]}
    )
    assert merged.status_code == 200
    assert duplicate_of(create(http, {"emails": emails("s@x.no")})) == t["id"]
    found = http.post(
        f"{C}/query", json={"query": {"filter": {"info.emails.email": {"$eq": "S@x.no"}}}}
    ).json()["contacts"]
    assert [c["id"] for c in found] == [t["id"]]


def test_extended_field_lookups_follow_writes(http: httpx.Client):
    key = http.post("/contacts/v4/extended-fields", json={"displayName": "tether-link-id"}).json()[
        "field"
    ]["key"]

    def ids(value: str) -> list[str]:
        body = {"query": {"filter": {f"info.extendedFields.{key}": {"$eq": value}}}}
        return [c["id"] for c in http.post(f"{C}/query", json=body).json()["contacts"]]

    a = create(http, {"name": {"first": "A"}, "extendedFields": {"items": {key: "L-1"}}})
    a_id = a.json()["contact"]["id"]
    assert ids("L-1") == [a_id]
    http.patch(
        f"{C}/{a_id}", json={"revision": 1, "info": {"extendedFields": {"items": {key: "L-2"}}}}
    )
    assert ids("L-1") == []
    assert ids("L-2") == [a_id]
    http.delete(f"{C}/{a_id}")
    assert ids("L-2") == []
    # the full filter still applies to the indexed candidates
    b = create(http, {"name": {"first": "B"}, "extendedFields": {"items": {key: "L-3"}}})
    b_id = b.json()["contact"]["id"]
    both = {f"info.extendedFields.{key}": {"$eq": "L-3"}, "info.name.first": {"$eq": "B"}}
    assert [
        c["id"]
        for c in http.post(f"{C}/query", json={"query": {"filter": both}}).json()["contacts"]
    ] == [b_id]
    wrong = {f"info.extendedFields.{key}": {"$eq": "L-3"}, "info.name.first": {"$eq": "Z"}}
    assert http.post(f"{C}/query", json={"query": {"filter": wrong}}).json()["contacts"] == []


# -- realism options (off by default) -----------------------------------------------------------


def test_realism_options_refuse_like_a_strict_server(sim: WixSimulator, http: httpx.Client):
    field = {"displayName": "tether-link-id"}
    assert http.post("/contacts/v4/extended-fields", json=field).status_code == 200
    item = {"id": "x", "tag": "WORK", "email": "a@x.no", "e164Phone": "+4741234567"}
    assert create(http, {"emails": {"items": [item]}}).status_code == 200  # ignored by default
    sim.extended_fields_refused = 403
    sim.store.strict_read_only_items = True
    sim.max_page_size = 1
    try:
        refused = http.post("/contacts/v4/extended-fields", json=field)
        assert refused.status_code == 403
        assert refused.json()["details"]["applicationError"]["code"] == "PERMISSION_DENIED"
        strict = create(http, {"emails": {"items": [{**item, "email": "b@x.no"}]}})
        assert strict.status_code == 400
        assert "READ_ONLY" in strict.text
        create(http, {"name": {"first": "Two"}})
        page = http.post(f"{C}/query", json={"query": {"paging": {"limit": 50}}}).json()
        assert len(page["contacts"]) == 1 and page["pagingMetadata"]["total"] == 2
    finally:
        sim.reset()  # back to the constructor's options
    assert sim.extended_fields_refused is None and sim.max_page_size is None
    assert not sim.store.strict_read_only_items

"""The Wix simulator pinned to shared/reference/wix-contacts-v4.md, over real HTTP on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.connectors.simkit import ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simulator import WixSimulator

C = "/contacts/v4/contacts"


@pytest.fixture(scope="module")
def sim() -> Iterator[WixSimulator]:
    simulator = WixSimulator(rate_limit=0, token_ttl_seconds=14400)
    yield simulator
    simulator.close()


@pytest.fixture(autouse=True)
def _reset(sim: WixSimulator) -> None:
    sim.reset()


@pytest.fixture
def http(sim: WixSimulator, server: ServerThread) -> Iterator[httpx.Client]:
    headers = {"Authorization": sim.api_key, "wix-site-id": sim.site_id}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        yield client


@pytest.fixture
def admin(server: ServerThread) -> Iterator[WixAdmin]:
    with WixAdmin(server.url) as helper:
        yield helper


def app_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"message", "details"}
    error: dict[str, Any] = body["details"]["applicationError"]
    return error


def create(http: httpx.Client, info: dict[str, Any], **extra: Any) -> httpx.Response:
    return http.post(C, json={"info": info, **extra})


def person(email: str | None = None, phone: str | None = None, **name: str) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name or {"first": "Kari", "last": "Nordmann"}}
    if email:
        info["emails"] = {"items": [{"tag": "MAIN", "email": email}]}
    if phone:
        info["phones"] = {"items": [{"tag": "MOBILE", "countryCode": "NO", "phone": phone}]}
    return info


# -- authentication ------------------------------------------------------------------------


def test_api_key_needs_site_header_and_write_permission(sim: WixSimulator, server: ServerThread):
    url = server.url + C + "/query"
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": "wrong"}).status_code == 401
    no_site = httpx.post(url, json={}, headers={"Authorization": sim.api_key})
    assert no_site.status_code == 403
    assert app_error(no_site)["code"] == "PERMISSION_DENIED"
    other_site = {"Authorization": sim.api_key, "wix-site-id": "another-site"}
    assert httpx.post(url, json={}, headers=other_site).status_code == 403
    read_only = {"Authorization": sim.read_only_api_key or "", "wix-site-id": sim.site_id}
    assert httpx.post(url, json={}, headers=read_only).status_code == 200
    denied = httpx.post(server.url + C, json={"info": person()}, headers=read_only)
    assert denied.status_code == 403


def test_oauth_token_raw_and_bearer_and_expiry(sim: WixSimulator, server: ServerThread):
    bad = httpx.post(
        server.url + "/oauth2/token",
        json={
            "grant_type": "client_credentials",
            "client_id": sim.app_id,
            "client_secret": "nope",
            "instance_id": sim.instance_id,
        },
    )
    assert bad.status_code == 400
    issued = httpx.post(
        server.url + "/oauth2/token",
        json={
            "grant_type": "client_credentials",
            "client_id": sim.app_id,
            "client_secret": sim.app_secret,
            "instance_id": sim.instance_id,
        },
    )
    assert issued.status_code == 200
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 14400
    token = body["access_token"]
    url = server.url + C + "/query"
    assert httpx.post(url, json={}, headers={"Authorization": token}).status_code == 200
    assert httpx.post(url, json={}, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    sim.expire_tokens()
    expired = httpx.post(url, json={}, headers={"Authorization": token})
    assert expired.status_code == 401
    assert app_error(expired)["code"] == "UNAUTHENTICATED"


# -- create ---------------------------------------------------------------------------------


def test_create_shape_revision_primary_and_derived_fields(http: httpx.Client):
    info = person(email="kari@example.com", phone="41234567")
    info["emails"]["items"].append({"tag": "WORK", "email": "kari@work.example"})
    response = create(http, info)
    assert response.status_code == 200
    contact = response.json()["contact"]
    assert contact["revision"] == 1
    assert contact["createdDate"] == contact["updatedDate"]
    assert contact["createdDate"].endswith("Z") and len(contact["createdDate"]) == 24
    assert contact["lastActivity"]["activityType"] == "CONTACT_CREATED"
    emails = contact["info"]["emails"]["items"]
    assert emails[0]["primary"] is True and "primary" not in emails[1]
    assert all(item["id"] for item in emails)
    phone = contact["info"]["phones"]["items"][0]
    assert phone["primary"] is True and phone["e164Phone"] == "+4741234567"
    assert contact["primaryInfo"] == {"email": "kari@example.com", "phone": "41234567"}
    extended = contact["info"]["extendedFields"]["items"]
    assert extended["contacts.displayByFirstName"] == "Kari Nordmann"
    assert extended["emailSubscriptions.effectiveEmail"] == "kari@example.com"


def test_create_flagged_primary_wins_and_two_primaries_rejected(http: httpx.Client):
    info = {
        "emails": {
            "items": [{"email": "a@example.com"}, {"email": "b@example.com", "primary": True}]
        }
    }
    contact = create(http, info).json()["contact"]
    assert contact["primaryInfo"]["email"] == "b@example.com"
    two = {
        "emails": {
            "items": [
                {"email": "c@example.com", "primary": True},
                {"email": "d@example.com", "primary": True},
            ]
        }
    }
    response = create(http, two)
    assert response.status_code == 400
    assert app_error(response)["code"] == "CANNOT_HAVE_MULTIPLE_PRIMARY_INFO"


def test_create_without_name_email_or_phone_is_insufficient(http: httpx.Client):
    response = create(http, {"company": "Acme"})
    assert response.status_code == 400
    assert app_error(response)["code"] == "INSUFFICIENT_CONTACT_DATA"
    missing = http.post(C, json={})
    assert missing.status_code == 400
    assert missing.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "info"


def test_primary_info_is_read_only(http: httpx.Client):
    info = {**person(email="kari@example.com"), "primaryInfo": {"email": "evil@example.com"}}
    contact = http.post(C, json={"info": info, "primaryInfo": {"email": "x@example.com"}}).json()
    assert contact["contact"]["primaryInfo"]["email"] == "kari@example.com"


def test_duplicate_email_is_case_insensitive_and_trimmed(http: httpx.Client):
    first = create(http, person(email="Kari@Example.com")).json()["contact"]
    response = create(http, person(email="  kari@example.COM "))
    assert response.status_code == 409
    error = app_error(response)
    assert error["code"] == "DUPLICATE_CONTACT_EXISTS"
    assert error["data"]["duplicateContactId"] == first["id"]
    assert "duplicateEmail" in error["data"]
    allowed = create(http, person(email="kari@example.com"), allowDuplicates=True)
    assert allowed.status_code == 200


def test_duplicate_phone_only_when_no_email_given(http: httpx.Client):
    first = create(http, person(phone="412 34 567")).json()["contact"]
    response = create(http, person(phone="+47 41234567"))
    assert response.status_code == 409
    assert app_error(response)["data"]["duplicateContactId"] == first["id"]
    assert "duplicatePhone" in app_error(response)["data"]
    with_email = create(http, person(email="other@example.com", phone="41234567"))
    assert with_email.status_code == 200


# -- get ------------------------------------------------------------------------------------


def test_get_projection_and_not_found(http: httpx.Client):
    contact = create(http, person(email="kari@example.com")).json()["contact"]
    full = http.get(f"{C}/{contact['id']}").json()
    assert full["responseType"] == "REGULAR" and full["contact"] == contact
    picked = http.get(f"{C}/{contact['id']}", params={"fields": "source,updatedDate"}).json()
    assert set(picked["contact"]) == {"id", "revision", "source", "updatedDate"}
    basic = http.get(f"{C}/{contact['id']}", params={"fieldsets": "BASIC"}).json()["contact"]
    assert set(basic["info"]) == {"name"} and "primaryInfo" in basic and "source" not in basic
    bad = http.get(f"{C}/{contact['id']}", params={"fields": "info.secret"})
    assert bad.status_code == 400
    missing = http.get(f"{C}/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert app_error(missing)["code"] == "CONTACT_NOT_FOUND"


# -- update ---------------------------------------------------------------------------------


def test_update_revision_semantics(http: httpx.Client):
    contact = create(http, person(email="kari@example.com")).json()["contact"]
    path = f"{C}/{contact['id']}"
    missing_revision = http.patch(path, json={"info": {"company": "Acme"}})
    assert missing_revision.status_code == 400
    time.sleep(0.002)
    updated = http.patch(path, json={"revision": 1, "info": {"company": "Acme"}}).json()["contact"]
    assert updated["revision"] == 2
    assert updated["updatedDate"] > contact["updatedDate"]
    assert updated["createdDate"] == contact["createdDate"]
    stale = http.patch(path, json={"revision": 1, "info": {"company": "Other"}})
    assert stale.status_code == 409
    assert app_error(stale)["code"] == "CONTACT_ALREADY_CHANGED"
    absent = http.patch(f"{C}/nope", json={"revision": 1, "info": {"company": "x"}})
    assert absent.status_code == 404


def test_update_keeps_omitted_keys_and_replaces_sent_collections(http: httpx.Client):
    info = person(email="a@example.com", phone="41234567")
    info["emails"]["items"].append({"tag": "WORK", "email": "b@example.com"})
    info["company"] = "Acme"
    contact = create(http, info).json()["contact"]
    emails = contact["info"]["emails"]["items"]
    sent = {"items": [{**emails[1], "primary": True}]}  # keep only the work address
    updated = http.patch(
        f"{C}/{contact['id']}", json={"revision": 1, "info": {"emails": sent}}
    ).json()["contact"]
    assert updated["info"]["company"] == "Acme"
    assert updated["info"]["phones"] == contact["info"]["phones"]
    assert [e["email"] for e in updated["info"]["emails"]["items"]] == ["b@example.com"]
    assert updated["info"]["emails"]["items"][0]["id"] == emails[1]["id"]
    assert updated["primaryInfo"]["email"] == "b@example.com"


def test_update_duplicate_rule_and_insufficient_data(http: httpx.Client):
    create(http, person(email="taken@example.com"))
    mine = create(http, {"emails": {"items": [{"email": "mine@example.com"}]}}).json()["contact"]
    path = f"{C}/{mine['id']}"
    dup = http.patch(
        path, json={"revision": 1, "info": {"emails": {"items": [{"email": "TAKEN@example.com"}]}}}
    )
    assert dup.status_code == 409
    assert app_error(dup)["code"] == "DUPLICATE_CONTACT_EXISTS"
    empty = http.patch(path, json={"revision": 1, "info": {"emails": {"items": []}}})
    assert empty.status_code == 400
    assert app_error(empty)["code"] == "INSUFFICIENT_CONTACT_DATA"
    nothing = http.patch(path, json={"revision": 1, "info": {}})
    assert app_error(nothing)["code"] == "INSUFFICIENT_UPDATE_CONTACT_DATA"


def test_custom_extended_fields_need_a_definition_and_are_replaced(http: httpx.Client):
    undefined = create(http, {**person(), "extendedFields": {"items": {"custom.x": "1"}}})
    assert undefined.status_code == 400
    assert app_error(undefined)["code"] == "INVALID_EXTENDED_FIELD_VALUE"
    made = http.post("/contacts/v4/extended-fields", json={"displayName": "tether-link-id"})
    assert made.json() == {"field": made.json()["field"], "newField": True}
    key = made.json()["field"]["key"]
    assert key == "custom.tether-link-id"
    again = http.post("/contacts/v4/extended-fields", json={"displayName": "tether-link-id"})
    assert again.json()["newField"] is False
    contact = create(http, {**person(), "extendedFields": {"items": {key: "L-1"}}}).json()
    items = contact["contact"]["info"]["extendedFields"]["items"]
    assert items[key] == "L-1" and "contacts.displayByFirstName" in items
    updated = http.patch(
        f"{C}/{contact['contact']['id']}",
        json={"revision": 1, "info": {"extendedFields": {"items": {}}}},
    ).json()["contact"]
    assert key not in updated["info"]["extendedFields"]["items"]
    assert "contacts.displayByFirstName" in updated["info"]["extendedFields"]["items"]


# -- delete / list / query ------------------------------------------------------------------


def test_delete(http: httpx.Client):
    contact = create(http, person()).json()["contact"]
    response = http.delete(f"{C}/{contact['id']}")
    assert response.status_code == 200 and response.json() == {}
    assert http.get(f"{C}/{contact['id']}").status_code == 404
    assert http.delete(f"{C}/{contact['id']}").status_code == 404


def seed_people(admin: WixAdmin, n: int) -> list[dict[str, Any]]:
    return admin.seed(
        [
            {
                "createdDate": f"2024-01-01T00:00:{i:02d}.000Z",
                "updatedDate": f"2024-02-01T00:00:{59 - i:02d}.000Z",
                "info": {
                    "name": {"first": f"P{i:02d}"},
                    "emails": {"items": [{"email": f"p{i}@example.com"}]},
                },
            }
            for i in range(n)
        ]
    )


def test_list_paging_and_sort(http: httpx.Client, admin: WixAdmin):
    seeded = seed_people(admin, 7)
    page = http.get(C, params={"paging.limit": 3, "paging.offset": 3}).json()
    assert [c["id"] for c in page["contacts"]] == [c["id"] for c in seeded[3:6]]
    assert page["pagingMetadata"] == {"count": 3, "offset": 3, "total": 7, "tooManyToCount": False}
    desc = http.get(C, params={"sort.fieldName": "createdDate", "sort.order": "DESC"}).json()
    assert desc["contacts"][0]["id"] == seeded[-1]["id"]
    assert len(http.get(C).json()["contacts"]) == 7
    bad = http.get(C, params={"sort.fieldName": "updatedDate"})
    assert app_error(bad)["code"] == "UNSUPPORTED_SORT_FIELD"


def test_query_limit_edges(http: httpx.Client, admin: WixAdmin):
    seed_people(admin, 60)
    default = http.post(f"{C}/query", json={"query": {}}).json()
    assert default["pagingMetadata"]["count"] == 50 and default["pagingMetadata"]["total"] == 60
    exact = http.post(f"{C}/query", json={"query": {"paging": {"limit": 1000}}})
    assert exact.status_code == 200
    for limit in (1001, 0):
        too_many = http.post(f"{C}/query", json={"query": {"paging": {"limit": limit}}})
        assert too_many.status_code == 400
        assert app_error(too_many)["code"] == "ILLEGAL_LIMIT"
    past_end = http.post(f"{C}/query", json={"query": {"paging": {"offset": 100}}}).json()
    assert past_end["contacts"] == [] and past_end["pagingMetadata"]["total"] == 60


def test_query_filters(http: httpx.Client, admin: WixAdmin):
    seeded = seed_people(admin, 10)

    def ids(query_filter: dict[str, Any], **query: Any) -> list[str]:
        response = http.post(f"{C}/query", json={"query": {"filter": query_filter, **query}})
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["contacts"]]

    all_ids = [c["id"] for c in seeded]
    # updatedDate of P(i) is 59 - i seconds: $gt/$gte pick the early-created ones, sorted by
    # createdDate ascending.
    assert ids({"updatedDate": {"$gt": "2024-02-01T00:00:55.000Z"}}) == all_ids[:4]
    assert ids({"updatedDate": {"$gte": "2024-02-01T00:00:55.000Z"}}) == all_ids[:5]
    assert ids({"createdDate": {"$lt": "2024-01-01T00:00:02Z"}}) == all_ids[:2]
    assert ids({"info.emails.email": "P3@EXAMPLE.com"}) == [all_ids[3]]
    assert ids({"primaryInfo.email": {"$in": ["p1@example.com", "p2@example.com"]}}) == all_ids[1:3]
    assert ids({"id": {"$in": [all_ids[5], all_ids[0]]}}) == [all_ids[0], all_ids[5]]
    assert ids({"$or": [{"info.name.first": "P01"}, {"info.name.first": "P09"}]}) == [
        all_ids[1],
        all_ids[9],
    ]
    assert ids({"info.name.first": {"$startsWith": "p0"}}) == all_ids[:10]
    assert ids({}, sort=[{"fieldName": "createdDate", "order": "DESC"}])[0] == all_ids[-1]
    assert ids({}, sort={"fieldName": "info.name.first", "order": "DESC"})[0] == all_ids[-1]


def test_query_rejections(http: httpx.Client):
    def code(query: dict[str, Any]) -> str:
        response = http.post(f"{C}/query", json={"query": query})
        assert response.status_code == 400
        return str(app_error(response)["code"])

    assert code({"sort": [{"fieldName": "updatedDate", "order": "ASC"}]}) == (
        "UNSUPPORTED_SORT_FIELD"
    )
    assert code({"filter": {"updatedDate": {"$in": ["x"]}}}) == "UNSUPPORTED_FILTER_OPERATOR"
    assert code({"filter": {"info.secret": "x"}}) == "UNSUPPORTED_FILTER_FIELD_UNKNOWN"
    assert code({"filter": {"updatedDate": {"$gt": "yesterday"}}}) == "UNSUPPORTED_FILTER_VALUE"
    assert code({"filter": ["not", "an", "object"]}) == "MALFORMED_FILTER"


def test_query_by_custom_extended_field(http: httpx.Client):
    key = http.post("/contacts/v4/extended-fields", json={"displayName": "tether-link-id"}).json()[
        "field"
    ]["key"]
    a = create(http, {**person(), "extendedFields": {"items": {key: "L-1"}}}).json()["contact"]
    create(http, {**person(), "extendedFields": {"items": {key: "L-2"}}})
    for field in (f"info.extendedFields.{key}", f"info.extendedFields.items.{key}"):
        found = http.post(f"{C}/query", json={"query": {"filter": {field: {"$eq": "L-1"}}}})
        assert [c["id"] for c in found.json()["contacts"]] == [a["id"]]


# -- merge ----------------------------------------------------------------------------------


def test_merge(http: httpx.Client):
    target = create(http, person(email="t@example.com")).json()["contact"]
    source = create(
        http,
        {
            "name": {"first": "Other"},
            "emails": {"items": [{"email": "s@example.com"}]},
            "phones": {"items": [{"phone": "41234567", "countryCode": "NO"}]},
        },
    ).json()["contact"]
    stale = http.post(
        f"{C}/{target['id']}/merge",
        json={"targetContactRevision": 7, "sourceContactIds": [source["id"]]},
    )
    assert stale.status_code == 409
    assert app_error(stale)["code"] == "CONTACT_ALREADY_CHANGED"
    too_many = http.post(
        f"{C}/{target['id']}/merge", json={"targetContactRevision": 1, "sourceContactIds": []}
    )
    assert too_many.status_code == 400
    merged = http.post(
        f"{C}/{target['id']}/merge",
        json={"targetContactRevision": 1, "sourceContactIds": [source["id"]]},
    )
    assert merged.status_code == 200
    result = merged.json()["contact"]
    assert result["revision"] == 2
    assert result["info"]["name"] == target["info"]["name"]  # target data never overwritten
    assert [e["email"] for e in result["info"]["emails"]["items"]] == [
        "t@example.com",
        "s@example.com",
    ]
    assert result["primaryInfo"] == {"email": "t@example.com", "phone": "41234567"}
    via_source = http.get(f"{C}/{source['id']}").json()
    assert via_source["responseType"] == "MERGED"
    assert via_source["contact"]["id"] == target["id"]
    listed = http.post(f"{C}/query", json={"query": {}}).json()["contacts"]
    assert [c["id"] for c in listed] == [target["id"]]


# -- rate limit, admin ----------------------------------------------------------------------


def test_rate_limit_429_body_and_retry_after(
    sim: WixSimulator, http: httpx.Client, admin: WixAdmin
):
    admin.rate_limit(limit=3, window_seconds=2.0)
    statuses = [http.post(f"{C}/query", json={}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    throttled = http.post(f"{C}/query", json={})
    assert app_error(throttled)["code"] == "RESOURCE_EXHAUSTED"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 2
    counters = admin.counters()
    assert counters["rateLimited"] == 3
    assert {"method": "POST", "operation": "query", "status": 429, "count": 3} in counters[
        "requests"
    ]
    time.sleep(2.05)
    assert http.post(f"{C}/query", json={}).status_code == 200


def test_admin_seed_edit_delete_and_faults(http: httpx.Client, admin: WixAdmin):
    [seeded] = admin.seed([{"id": "fixed-id", "revision": 4, "info": person(email="a@b.co")}])
    assert seeded["id"] == "fixed-id" and seeded["revision"] == 4
    edited = admin.edit("fixed-id", {"name": {"first": "Dashboard"}})
    assert edited["revision"] == 5 and edited["info"]["name"] == {"first": "Dashboard"}
    assert http.get(f"{C}/fixed-id").json()["contact"]["revision"] == 5
    admin.add_fault(kind="status", status=503, path="/query", times=1)
    assert http.post(f"{C}/query", json={}).status_code == 503
    assert http.post(f"{C}/query", json={}).status_code == 200
    admin.delete("fixed-id")
    assert admin.contacts() == []
    assert admin.public_key_pem().startswith("-----BEGIN PUBLIC KEY-----")

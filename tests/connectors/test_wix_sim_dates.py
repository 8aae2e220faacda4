"""The Wix simulator's date index: queries narrowed by ``createdDate`` / ``updatedDate`` answer
exactly what the full scan answers, and the store's copy-on-write keeps handed-out contacts fixed.

The oracle over real HTTP: the same condition wrapped in ``$or`` (which the store never narrows)
runs the full scan; both must return the same contacts in the same order, page by page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from services.connectors.wix.simstore import DateIndex
from services.connectors.wix.simulator import WixSimulator

C = "/contacts/v4/contacts"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def wire(moment: datetime, offset_hours: int = 0) -> str:
    """``moment`` as Wix writes it (``Z``), or at another UTC offset (the same instant)."""
    local = moment.astimezone(timezone(timedelta(hours=offset_hours)))
    return local.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- DateIndex on its own -------------------------------------------------------------------


def test_between_answers_each_operator():
    index = DateIndex()
    for n in range(5):
        index.put(f"c{n}", wire(at(n)))
    index.put("tie", wire(at(2)))
    assert index.between({"$gt": at(2)}) == {"c3", "c4"}
    assert index.between({"$gte": at(2)}) == {"c2", "tie", "c3", "c4"}
    assert index.between({"$lt": at(2)}) == {"c0", "c1"}
    assert index.between({"$lte": at(2)}) == {"c0", "c1", "c2", "tie"}
    assert index.between({"$eq": at(2)}) == {"c2", "tie"}
    assert index.between({"$gt": at(0), "$lt": at(3)}) == {"c1", "c2", "tie"}
    assert index.between({"$gt": at(9)}) == set()


def test_put_moves_an_entry_and_discard_removes_it():
    index = DateIndex()
    index.put("a", wire(at(1)))
    index.put("b", wire(at(2)))
    index.put("a", wire(at(3)))
    assert index.between({"$gt": at(2)}) == {"a"}
    assert index.between({"$lte": at(2)}) == {"b"}
    index.discard("b")
    assert index.between({"$gte": at(0)}) == {"a"}


def test_a_value_that_is_not_a_date_makes_the_index_undated_until_it_goes():
    index = DateIndex()
    index.put("a", wire(at(1)))
    index.put("b", "yesterday")
    assert not index.dated
    index.put("b", wire(at(2)))
    assert index.dated
    index.put("b", "soon")
    index.discard("b")
    assert index.dated
    assert index.between({"$gte": at(0)}) == {"a"}


# -- the simulator over real HTTP -----------------------------------------------------------


def seed(sim: WixSimulator) -> list[dict[str, Any]]:
    """Contacts whose dates tie, differ only in their UTC offset, and interleave."""
    records: list[object] = []
    for n in range(40):
        created = wire(at(n // 3), offset_hours=n % 2)  # ties in threes, two offsets
        updated = wire(at(50 + (n * 7) % 20), offset_hours=(n + 1) % 2)  # ties in twos
        records.append(
            {
                "info": {"name": {"first": f"P{n}"}},
                "createdDate": created,
                "updatedDate": updated,
            }
        )
    return sim.store.seed(records, actor={}, emit=False)


def query(http: httpx.Client, query_filter: object, **spec: Any) -> list[tuple[str, int]]:
    """Every matching contact, paged by 7, as (id, revision)."""
    found: list[tuple[str, int]] = []
    offset = 0
    while True:
        body = {"query": {"filter": query_filter, "paging": {"limit": 7, "offset": offset}, **spec}}
        response = http.post(C + "/query", json=body)
        assert response.status_code == 200, response.text
        page = response.json()["contacts"]
        found += [(c["id"], c["revision"]) for c in page]
        offset += len(page)
        if not page:
            return found


CONDITIONS: list[dict[str, Any]] = [
    {"updatedDate": {"$gt": wire(at(60))}},
    {"updatedDate": {"$gte": wire(at(60), offset_hours=1)}},
    {"updatedDate": {"$lt": wire(at(55))}},
    {"updatedDate": {"$lte": {"$date": wire(at(57))}}},
    {"updatedDate": {"$gt": wire(at(52)), "$lt": wire(at(66))}},
    {"updatedDate": {"$gte": wire(at(55)), "$ne": wire(at(60))}},
    {"updatedDate": wire(at(60))},
    {"createdDate": {"$gte": wire(at(4)), "$lte": wire(at(9))}},
    {"createdDate": {"$eq": wire(at(5), offset_hours=1)}},
    {"$and": [{"updatedDate": {"$gt": wire(at(58))}}, {"createdDate": {"$lt": wire(at(12))}}]},
]


@pytest.mark.parametrize("condition", CONDITIONS, ids=[str(c) for c in CONDITIONS])
@pytest.mark.parametrize(
    "sort",
    [None, {"fieldName": "createdDate", "order": "DESC"}],
    ids=["createdDate-asc", "createdDate-desc"],
)
def test_a_narrowed_query_answers_what_the_full_scan_answers(
    sim: WixSimulator, http: httpx.Client, condition: dict[str, Any], sort: Any
):
    contacts = seed(sim)
    # writes move dates in and out of ranges: an update (updatedDate now), a delete, a merge
    first = contacts[0]
    patched = http.patch(
        f"{C}/{first['id']}",
        json={"revision": first["revision"], "info": {"name": {"first": "Moved"}}},
    )
    assert patched.status_code == 200
    assert http.delete(f"{C}/{contacts[5]['id']}").status_code == 200
    target, source = contacts[9], contacts[8]
    merge = {"targetContactRevision": target["revision"], "sourceContactIds": [source["id"]]}
    assert http.post(f"{C}/{target['id']}/merge", json=merge).status_code == 200
    spec = {"sort": [sort]} if sort else {}

    narrowed = query(http, condition, **spec)
    scanned = query(http, {"$or": [condition]}, **spec)

    assert narrowed == scanned
    assert narrowed  # every condition matches some contacts: the comparison means something


def test_a_stored_date_that_is_not_a_date_is_still_refused(sim: WixSimulator, http: httpx.Client):
    sim.store.seed(
        [{"info": {"name": {"first": "Odd"}}, "updatedDate": "yesterday"}], actor={}, emit=False
    )
    body = {"query": {"filter": {"updatedDate": {"$gt": wire(at(0))}}}}
    response = http.post(C + "/query", json=body)
    assert response.status_code == 400
    assert response.json()["details"]["applicationError"]["code"] == "UNSUPPORTED_FILTER_VALUE"


def test_what_the_store_hands_out_stays_as_it_was_after_later_writes(
    sim: WixSimulator, http: httpx.Client
):
    created = http.post(C, json={"info": {"name": {"first": "Kari"}}}).json()["contact"]
    before, _ = sim.store.get(created["id"])
    page, _total = sim.store.query(limit=10, offset=0)
    http.patch(
        f"{C}/{created['id']}",
        json={"revision": created["revision"], "info": {"name": {"first": "Kåre"}}},
    )
    after, _ = sim.store.get(created["id"])
    assert (before["revision"], before["info"]["name"]) == (1, {"first": "Kari"})
    assert (page[0]["revision"], page[0]["info"]["name"]) == (1, {"first": "Kari"})
    assert (after["revision"], after["info"]["name"]) == (2, {"first": "Kåre"})


@pytest.mark.parametrize("order", ["ASC", "DESC"])
def test_sorting_by_an_indexed_date_orders_as_the_generic_sort(
    sim: WixSimulator, http: httpx.Client, order: str
):
    # Seeded contacts' lastActivity.activityDate is their createdDate; lastActivity is sorted
    # by the generic sort (not indexed): both orders, ties by insertion included, must agree.
    contacts = seed(sim)
    first = contacts[3]
    patch = {"revision": first["revision"], "info": {"name": {"first": "Later"}}}
    assert http.patch(f"{C}/{first['id']}", json=patch).status_code == 200
    assert http.delete(f"{C}/{contacts[7]['id']}").status_code == 200

    by_created = query(http, None, sort=[{"fieldName": "createdDate", "order": order}])
    by_activity = query(
        http, None, sort=[{"fieldName": "lastActivity.activityDate", "order": order}]
    )

    assert by_created == by_activity
    assert len(by_created) == len(contacts) - 1

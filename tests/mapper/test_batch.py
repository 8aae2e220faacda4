"""The set-based batch (issue 12): ``Handler.prepare`` + ``BatchStore`` against real PostgreSQL.

* The same inputs handled as one set-based batch and input by input (``MapperStore``: every
  read and write at once) leave identical tables — links, members, keys, contact index,
  records, reviews, outbox, history — although later inputs of the batch depend on what
  earlier ones wrote (a contact indexed, then matched; a link created, then found by key; one
  contact edited twice, an older state after a newer one).
* The number of statements a batch sends does not grow with its size.
* A link changed under the batch is still detected: the flush raises ``StaleLinkError``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from services.core.codec import AvroCodec
from services.core.topics import TopicLayout
from services.mapper.domain import Policy
from services.mapper.handler import Handler
from services.mapper.migrations import apply_migrations
from services.mapper.store import MapperStore
from services.mapper.store.batch import BatchStore
from services.mapper.store.links import StaleLinkError
from services.mapper.store.session import prepare_session
from tests.mapper.support import (
    customer,
    dump_state,
    employee,
    po_delete,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CODEC = AvroCodec()
LAYOUT = TopicLayout(prefix="batch")
TABLES = (
    "mapper_links, mapper_link_members, mapper_link_keys, mapper_contacts, mapper_contact_keys,"
    " mapper_records, mapper_review_items, mapper_conflicts, mapper_outbox, mapper_history,"
    " mapper_stream_starts"
)


def _decoded(datum: dict[str, Any]) -> dict[str, Any]:
    return CODEC.decode(CODEC.encode("ChangeEvent", datum), "ChangeEvent")


def inputs(people: int) -> list[dict[str, Any]]:
    """Changes whose decisions depend on each other within one batch."""
    out: list[dict[str, Any]] = []
    for i in range(people):
        phone = f"9{i:07d}"
        email = f"p{i}@example.no"
        if i % 3 == 0:  # a Wix contact first: the employee after it is matched to it
            contact = wix_contact(f"w{i}", f"P{i}", "Dahl", email=email, phone=phone)
            out.append(wix_event(contact, ts(1)))
        out.append(po_event("employees", employee(100 + i, f"P{i}", "Dahl", phone, email), ts(2)))
        if i % 2 == 0:  # same e-mail: found through the link the employee created (link keys)
            out.append(po_event("customers", customer(500 + i, f"P{i}", "Dahl", email), ts(3)))
    # One contact edited twice, then an older state of it (kept out of the index by revision).
    out.append(wix_event(wix_contact("w0", "P0", "Dahl-Berg", phone="90000000", revision=2), ts(4)))
    out.append(wix_event(wix_contact("w0", "P0", "Old", phone="90000000", revision=1), ts(0)))
    out.append(po_event("employees", employee(100, "P0", "Dahl", "90000000", "p0@x.no"), ts(5)))
    out.append(po_delete("customers", 502, ts(6)))
    # A contact's e-mail changes, then its older state arrives: a record with the old e-mail is
    # not matched to it (the index kept the newer state), one with the new e-mail is.
    for revision, mail, at in (
        (1, "k1@example.no", 8),
        (2, "k2@example.no", 9),
        (1, "k1@example.no", 8),
    ):
        contact = wix_contact("wk", "Kim", "Lund", email=mail, revision=revision, at=ts(at))
        out.append(wix_event(contact, ts(at)))
    out.append(po_event("employees", employee(900, "Kim", "Lund", None, "k1@example.no"), ts(10)))
    out.append(po_event("employees", employee(901, "Kim", "Lund", None, "k2@example.no"), ts(11)))
    out.append(wix_event(wix_contact("w-new", "Solo", "Wix", email="solo@example.no"), ts(7)))
    return [_decoded(d) for d in out]


def run(dsn: str, datums: list[dict[str, Any]], *, batched: bool) -> int:
    """Handle ``datums`` in one transaction; the statements a ``BatchStore`` sent."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        apply_migrations(conn)
        prepare_session(conn)
        store = BatchStore(conn) if batched else MapperStore(conn)
        handler = Handler(store, CODEC, LAYOUT, Policy(), max_deletes_per_hour=25)
        with conn.transaction():
            if isinstance(store, BatchStore):
                handler.prepare([("change", d) for d in datums])
            for datum in datums:
                handler.change(datum, NOW)
            store.flush()
        return store.statements if isinstance(store, BatchStore) else 0


def state(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    dumped = dump_state(dsn)
    dumped.pop("mapper_schema_migrations", None)
    return dumped


def test_a_batch_leaves_what_input_by_input_leaves(pg_dsn: str) -> None:
    datums = inputs(12)
    run(pg_dsn, datums, batched=False)
    expected = state(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    run(pg_dsn, datums, batched=True)
    got = state(pg_dsn)
    assert expected["mapper_links"], "the inputs made links"
    assert len(expected["mapper_outbox"]) > 5
    for table in expected:
        assert got[table] == expected[table], table


def test_the_statements_of_a_batch_do_not_grow_with_it(pg_dsn: str) -> None:
    small = run(pg_dsn, inputs(5), batched=True)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    large = run(pg_dsn, inputs(60), batched=True)
    assert large <= small, (small, large)
    assert large < 20


def test_a_link_changed_under_the_batch_is_detected(pg_dsn: str) -> None:
    datums = inputs(2)
    run(pg_dsn, datums, batched=True)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        prepare_session(conn)
        [(link_id,)] = conn.execute(
            "SELECT link_id FROM mapper_link_members WHERE record_id = '101'"
        ).fetchall()
        store = BatchStore(conn)
        with conn.transaction():
            link = store.read_link(link_id)  # read without its row lock
            assert link is not None
            # Another transaction moved it on meanwhile.
            with psycopg.connect(pg_dsn, autocommit=True) as other:
                other.execute(
                    "UPDATE mapper_links SET version = version + 1 WHERE link_id = %s",
                    (link_id,),
                )
            newer = link.model_copy(update={"version": link.version + 1})
            store.save_link(newer, link)()
            with pytest.raises(StaleLinkError):
                store.flush()
            raise psycopg.Rollback()


def test_two_saves_of_one_link_from_one_version_are_stale(pg_dsn: str) -> None:
    run(pg_dsn, inputs(2), batched=True)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(link_id,)] = conn.execute(
            "SELECT link_id FROM mapper_link_members WHERE record_id = '101'"
        ).fetchall()
        store = BatchStore(conn)
        with conn.transaction():
            link = store.links_by_id([link_id])[link_id]
            store.save_link(link.model_copy(update={"version": link.version + 1}), link)()
            check = store.save_link(link.model_copy(update={"version": link.version + 1}), link)
            with pytest.raises(StaleLinkError):
                check()
            raise psycopg.Rollback()

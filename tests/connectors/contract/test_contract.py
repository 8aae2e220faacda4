"""The connector contract (services/core/connector.py): every connector resource, against its
simulator over real HTTP, must page (also when the server clamps the page size), resume from any
cursor without skipping a record, show deletes through get/scan/get_many/presence, refuse a stale
guard, find an existing record by its idempotency reference instead of creating a duplicate, wait
out 429s and renew an expired token in the middle of a read; what a stream reads in a record
(observe, version order) agrees with its key and version, and a complete read's cursor covers
every change and counts, not returns, what it re-reads."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from services.core.connector import Gone, Page, Present, RecordKey, SourceStream, StreamOptions
from services.core.errors import ConflictError, ContractError, NotFoundError
from tests.connectors.contract.harness import Calls, Harness


def ids(stream: SourceStream, pages: Iterable[Page]) -> list[str]:
    return [stream.key_of(record).id for page in pages for record in page.records]


def test_pages_cover_every_record_once_and_the_last_says_so(harness: Harness, calls: Calls) -> None:
    keys = harness.seed(7)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        pages = list(stream.pages(None, 3))
    assert sorted(ids(stream, pages)) == sorted(k.id for k in keys)
    assert all(len(page.records) <= 3 for page in pages)
    assert [page.last for page in pages] == [False] * (len(pages) - 1) + [True]
    schema = harness.descriptor.resource(harness.resource).record_schema
    for page in pages:
        for record in page.records:
            schema.model_validate(record)  # the descriptor's schema describes the records
            assert stream.version_of(record)


def test_a_clamped_page_size_loses_nothing(harness: Harness, calls: Calls) -> None:
    keys = harness.seed(7)
    harness.clamp(2)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        pages = list(stream.pages(None, 5))
        scanned = [listed.key.id for listed in stream.scan(5)]
    assert sorted(ids(stream, pages)) == sorted(k.id for k in keys)
    assert sorted(scanned) == sorted(k.id for k in keys)
    assert pages[-1].last
    # The server really clamped: 7 records, at most 2 per response, twice (pages and scan).
    assert calls.count(status=200) - calls.count(operation="token") >= 8


def test_records_sharing_one_change_stamp_are_not_skipped(harness: Harness, calls: Calls) -> None:
    keys = harness.seed(5, same_stamp=True)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        pages = list(stream.pages(None, 2))
        assert sorted(set(ids(stream, pages))) == sorted(k.id for k in keys)
        for i, page in enumerate(pages):  # a cursor in the middle of the stamp's records
            before = ids(stream, pages[: i + 1])
            resumed = ids(stream, stream.pages(page.cursor, 2))
            assert sorted(set(before) | set(resumed)) == sorted(k.id for k in keys)


def test_resuming_from_any_cursor_skips_nothing(harness: Harness, calls: Calls) -> None:
    keys = harness.seed(6)
    everything = sorted(k.id for k in keys)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        pages = list(stream.pages(None, 2))
        assert len(pages) >= 3
        versions = {stream.key_of(r).id: stream.version_of(r) for p in pages for r in p.records}
        for i, page in enumerate(pages):
            before = ids(stream, pages[: i + 1])
            resumed = ids(stream, stream.pages(page.cursor, 2))
            assert sorted(set(before) | set(resumed)) == everything, f"resumed after page {i}"
        # Changes after a complete read: an edit of a record read first, and a new record.
        harness.user_edit(keys[0], "Endret")
        (new,) = harness.seed(1)
        later = [r for p in stream.pages(pages[-1].cursor, 2) for r in p.records]
    seen = {stream.key_of(r).id: r for r in later}
    assert new.id in seen
    assert keys[0].id in seen
    assert stream.version_of(seen[keys[0].id]) != versions[keys[0].id]
    assert harness.value_of(seen[keys[0].id]) == "Endret"
    # Overlap is allowed, but a record read again unchanged has the version it had.
    for record_id, record in seen.items():
        if record_id in versions and record_id != keys[0].id:
            assert stream.version_of(record) == versions[record_id]


def test_deletes_show_in_get_and_scan(harness: Harness, calls: Calls) -> None:
    keys = harness.seed(3)
    with harness.client(calls) as client:
        stream, target = harness.stream(client), harness.target(client)
        assert stream.get(keys[0]) is not None
        target.delete(keys[0])
        assert stream.get(keys[0]) is None
        with pytest.raises(NotFoundError):
            target.delete(keys[0])
        harness.user_delete(keys[1])  # deleted in the product: polling cannot see it
        assert stream.get(keys[1]) is None
        assert [listed.key.id for listed in stream.scan(10)] == [keys[2].id]


def test_a_stale_guard_is_refused_and_a_fresh_one_applies(harness: Harness, calls: Calls) -> None:
    (key,) = harness.seed(1)
    with harness.client(calls) as client:
        stream, target = harness.stream(client), harness.target(client)
        read = stream.get(key)
        assert read is not None
        stale = target.guard(read, (harness.field,))
        harness.user_edit(key, "Brukerendring")
        with pytest.raises(ConflictError):
            target.update(key, {harness.field: "Motorendring"}, guard=stale)
        now = stream.get(key)
        assert now is not None and harness.value_of(now) == "Brukerendring"
        written = target.update(
            key, {harness.field: "Motorendring"}, guard=target.guard(now, (harness.field,))
        )
        assert harness.value_of(written.record) == "Motorendring"
        assert written.key.id == key.id
        after = stream.get(key)
        assert after is not None and harness.value_of(after) == "Motorendring"
        assert stream.version_of(after) != stream.version_of(now)


def test_a_repeated_create_finds_the_record_by_its_reference(
    harness: Harness, calls: Calls
) -> None:
    with harness.client(calls) as client:
        stream, target = harness.stream(client), harness.target(client)
        first = target.create(
            harness.values(1), reference="tether-ref-1", parent_id=harness.parent_id
        )
        assert first.created
        # The outcome of the first create was "lost": the engine sends it again.
        again = target.create(
            harness.values(1), reference="tether-ref-1", parent_id=harness.parent_id
        )
        assert not again.created
        assert again.key == first.key
        other = target.create(
            harness.values(2), reference="tether-ref-2", parent_id=harness.parent_id
        )
        assert other.created and other.key != first.key
        listed = sorted(listed.key.id for listed in stream.scan(10))
    assert listed == sorted({first.key.id, other.key.id})


def test_rate_limits_are_waited_out(harness: Harness, calls: Calls) -> None:
    (key,) = harness.seed(1)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        assert stream.get(key) is not None  # the token is fetched before the faults apply
        harness.rate_limit(2)
        record = stream.get(key)
    assert record is not None and stream.key_of(record) == RecordKey(key.id, key.parent_id)
    assert calls.count(status=429) == 2
    assert sum(calls.sleeps) > 0


def test_an_expired_token_is_renewed_in_the_middle_of_a_read(
    harness: Harness, calls: Calls
) -> None:
    keys = harness.seed(5)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        pages = stream.pages(None, 2)
        first = next(pages)
        harness.expire_tokens()
        rest = list(pages)
    assert sorted(ids(stream, [first, *rest])) == sorted(k.id for k in keys)
    assert calls.count(status=401) == 1
    assert calls.count(operation="token", status=200) == 2


def test_an_edit_behind_the_readers_position_is_read_again(harness: Harness, calls: Calls) -> None:
    keys = harness.seed(6)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        pages = stream.pages(None, 2)
        first = next(pages)
        read = {stream.key_of(r).id for r in first.records}
        behind = stream.key_of(first.records[0])
        ahead = next(k for k in reversed(keys) if k.id not in read)
        # During the read: first a record already read changes, then one not yet read.
        harness.user_edit(behind, "Bak")
        harness.user_edit(ahead, "Foran")
        rest = list(pages)
        later = list(stream.pages(rest[-1].cursor, 2))
    values = {stream.key_of(r).id: harness.value_of(r) for p in [*rest, *later] for r in p.records}
    assert values.get(behind.id) == "Bak"
    assert values.get(ahead.id) == "Foran"


def test_the_descriptor_builds_a_working_client_from_settings(harness: Harness) -> None:
    descriptor = harness.descriptor
    (key,) = harness.seed(1)
    settings = harness.settings()
    assert isinstance(settings, descriptor.settings_model)
    budget = descriptor.rate_limit.budget(f"contract-{descriptor.system}", share=0.5)
    client = descriptor.client_factory(settings, budget)
    try:
        record = descriptor.streams(client, StreamOptions())[harness.resource].get(key)
    finally:
        client.close()
    assert record is not None
    assert budget.acquired >= 1  # every request took a permit from the budget
    assert set(descriptor.targets(client)) == set(descriptor.resources)
    assert set(descriptor.streams(client, StreamOptions())) == set(descriptor.resources)


def test_what_a_stream_reads_in_a_record_matches_its_key_and_version(
    harness: Harness, calls: Calls
) -> None:
    keys = harness.seed(4)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        pages = list(stream.pages(None, 3))
        harness.user_edit(keys[0], "Senere")
        edited = stream.get(keys[0])
    records = [record for page in pages for record in page.records]
    for record in records:
        observed = stream.observe(record)
        assert observed.key == stream.key_of(record)
        assert observed.version == stream.version_of(record)
        assert observed.order == stream.version_order(observed.version)
        canonical = stream.canonical_version(observed.version)
        assert stream.canonical_version(canonical) == canonical
    first = next(r for r in records if stream.key_of(r).id == keys[0].id)
    assert edited is not None
    assert stream.observe(edited).order > stream.observe(first).order  # a later version
    assert stream.observe(edited).changed_ns >= stream.observe(first).changed_ns
    with pytest.raises(ContractError):
        stream.observe({"unrelated": True})


def test_a_complete_read_covers_every_change_and_is_not_returned_again(
    harness: Harness, calls: Calls
) -> None:
    harness.seed(5)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        assert stream.covered_until(None) is None
        pages = list(stream.pages(None, 2))
        cursor = pages[-1].cursor
        again = list(stream.pages(cursor, 2))
    newest = max(stream.observe(r).changed_ns for p in pages for r in p.records)
    covered = stream.covered_until(cursor)
    assert covered is not None and covered >= newest
    # What the next read re-reads behind the cursor (the overlap) is counted, not returned.
    assert [r for p in again for r in p.records] == []
    assert sum(p.repeated for p in again) >= 1


def test_deleted_records_are_gone_and_left_out_of_get_many(harness: Harness, calls: Calls) -> None:
    keys = harness.seed(3)
    with harness.client(calls) as client:
        stream = harness.stream(client)
        harness.user_delete(keys[1])
        found = stream.get_many(keys)
        assert isinstance(stream.presence(keys[1]), Gone)
        assert isinstance(stream.presence(keys[0]), Present)
    assert sorted(stream.key_of(r).id for r in found) == sorted([keys[0].id, keys[2].id])

"""Tombstones for one tenant's keys on the compacted topics (real Kafka).

Cursors of two tenants, ``acme`` and ``acme-2`` (whose id starts with the other's), are saved
through the extractor's real cursor store, plus a bare-tenant key (the shape of the tenant
registry's keys); erasing ``acme`` leaves the newest value of each of its keys a tombstone —
read back from the broker, and by the cursor store as an extractor would at start-up — while
``acme-2``'s cursors remain.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.core.codec import AvroCodec
from services.core.kafka import make_admin, make_consumer, make_producer
from services.core.settings import TetherSettings
from services.core.tenant_erasure import tenant_keys, tombstone_tenant_keys
from services.core.topics import TopicLayout, provision
from services.extractor.cursors import CursorStore
from services.tenants.model import Tenant, TenantStatus
from services.tenants.registry import TenantDirectory, TenantRegistry

pytestmark = pytest.mark.integration

STREAMS = [("poweroffice", "employees", "changes"), ("wix", "contacts", "scan")]


def newest_values(settings: TetherSettings, topic: str) -> dict[bytes, bytes | None]:
    """key -> newest value on ``topic``, read from the beginning to the end offsets."""
    from kafka import TopicPartition

    consumer = make_consumer(settings, None)
    try:
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        newest: dict[bytes, bytes | None] = {}
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    newest[record.key] = record.value
        return newest
    finally:
        consumer.close()


@pytest.fixture
def cursors(kafka_bootstrap: str, topic_prefix: str) -> Any:
    settings = TetherSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    layout = TopicLayout(prefix=topic_prefix)
    admin = make_admin(settings)
    try:
        provision(admin, layout)
    finally:
        admin.close()
    producer = make_producer(settings, "test")
    store = CursorStore(layout.cursors, AvroCodec(), producer, settings)
    yield settings, layout, store, producer
    producer.close()


def test_the_tenants_keys_end_in_tombstones_and_the_other_tenants_cursors_remain(
    cursors: Any,
) -> None:
    settings, layout, store, producer = cursors
    for tenant in ("acme", "acme-2"):
        for system, resource, stream in STREAMS:
            store.save_stream_cursor(tenant, system, resource, stream, f"{tenant}-1")
            store.save_stream_cursor(tenant, system, resource, stream, f"{tenant}-2")
    # a bare tenant id as key (the tenant registry's shape); and one already tombstoned key
    producer.send(layout.cursors, key=b"acme", value=b"registry-entry").get(timeout=30)
    store.reset("acme", "wix", "contacts", "webhook")
    # both tenants registered, one with a status (the registry's topics are compacted too)
    registry = TenantRegistry(settings, AvroCodec(), producer)
    for tenant in ("acme", "acme-2"):
        registry.add(Tenant(tenant=tenant))
        registry.put_status(TenantStatus(tenant=tenant, phase="live"))
    assert set(layout.compacted_topics()) == {
        layout.cursors,
        layout.tenants,
        layout.tenant_status,
    }

    erased = {layout.cursors: 3, layout.tenants: 1, layout.tenant_status: 1}
    assert tenant_keys(settings, "acme") == erased  # the dry run writes nothing
    assert tombstone_tenant_keys(settings, "acme") == erased
    directory = TenantDirectory(settings, AvroCodec())
    directory.refresh()
    assert list(directory.tenants()) == ["acme-2"] and list(directory.statuses()) == ["acme-2"]
    directory.close()

    newest = newest_values(settings, layout.cursors)
    acme = {
        key: value for key, value in newest.items() if key == b"acme" or key.startswith(b"acme/")
    }
    assert len(acme) == 4 and set(acme.values()) == {None}
    other = {key: value for key, value in newest.items() if key.startswith(b"acme-2/")}
    assert len(other) == len(STREAMS) and None not in other.values()

    # an extractor starting now finds acme-2's cursors and none of acme's
    reloaded = CursorStore(layout.cursors, AvroCodec(), producer, settings)
    reloaded.load()
    for system, resource, stream in STREAMS:
        assert reloaded.stream_cursor("acme", system, resource, stream) is None
        assert reloaded.stream_cursor("acme-2", system, resource, stream) == "acme-2-2"

    # idempotent: nothing left to tombstone
    assert tombstone_tenant_keys(settings, "acme") == dict.fromkeys(erased, 0)

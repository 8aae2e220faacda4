"""Offboarding erasure on Kafka: tombstones for every key of one tenant on the compacted topics.

A compacted topic keeps the newest value of each key forever; a tombstone (a message with the
key and a null value) makes the broker's log cleaner drop the key's older values, then the
tombstone itself (after the topic's ``delete.retention.ms``, 24 h by default).
:func:`tombstone_tenant_keys` reads every compacted topic of the layout
(``TopicLayout.compacted_topics``: today the cursors, and whatever compacted topic is added
there) from the beginning to its end offsets, produces a tombstone for each key the tenant owns
whose newest value is not one already (``topics.tenant_owns_key``: the bare tenant id or
``<tenant>/...``, never ``<tenant>-2``), waits for the broker's acknowledgement, then reads the
topics again and checks that the newest value of every such key is a tombstone — else
:class:`ErasureIncompleteError` (something still writes for the tenant: stop it and run again).
:func:`tenant_keys` is the dry run. Topics on other (delete) policies are not touched: their
messages expire with their retention (docs/operations.md "Erasing a tenant").

Keys are counted, never printed or logged (a key names a tenant's record streams, not a
person, but the rule is the same as for records).

Imports: kafka-python and the core errors/kafka/settings/topics modules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import TopicPartition
from kafka.errors import KafkaError

from services.core.errors import TetherError, TransportError
from services.core.kafka import layout_from, make_consumer, make_producer
from services.core.settings import TetherSettings
from services.core.topics import tenant_owns_key

#: How long reading the compacted topics to their end, or an acknowledgement, may take.
READ_TIMEOUT_SECONDS = 60.0


class ErasureIncompleteError(TetherError):
    """After the tombstones, a key of the tenant still has a live value (a late write)."""


def _latest_is_live(
    settings: TetherSettings, topics: Iterable[str]
) -> dict[str, dict[bytes, bool]]:
    """topic -> key -> whether the key's newest value is live (False: a tombstone). Topics the
    broker does not have are left out (nothing of the tenant can be on them)."""
    consumer = make_consumer(settings, None)  # no group: reads everything, commits nothing
    try:
        existing = consumer.topics()
        latest: dict[str, dict[bytes, bool]] = {}
        parts: list[TopicPartition] = []
        for topic in topics:
            if topic not in existing:
                continue
            latest[topic] = {}
            parts += [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        if not parts:
            return latest
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while any(consumer.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TransportError("timed out reading the compacted topics")
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:  # in offset order per partition: the last one wins
                    if record.key is not None:
                        latest[record.topic][record.key] = record.value is not None
        return latest
    except KafkaError as exc:
        raise TransportError(f"cannot read the compacted topics: {type(exc).__name__}") from exc
    finally:
        consumer.close()


def _live_owned(latest: dict[str, dict[bytes, bool]], tenant: str) -> dict[str, list[bytes]]:
    """topic -> the keys of ``tenant`` whose newest value is live."""
    return {
        topic: sorted(key for key, live in keys.items() if live and tenant_owns_key(tenant, key))
        for topic, keys in latest.items()
    }


def _check_tenant(tenant: str) -> None:
    if not tenant or tenant != tenant.strip():
        raise ValueError("a tenant id is a non-empty string without surrounding blanks")


def tenant_keys(settings: TetherSettings, tenant: str) -> dict[str, int]:
    """The dry run: compacted topic -> how many of its keys ``tenant`` owns with a live value."""
    _check_tenant(tenant)
    topics = layout_from(settings).compacted_topics()
    owned = _live_owned(_latest_is_live(settings, topics), tenant)
    return {topic: len(keys) for topic, keys in owned.items()}


def tombstone_tenant_keys(settings: TetherSettings, tenant: str) -> dict[str, int]:
    """Tombstone every live key of ``tenant`` on every compacted topic and verify it by reading
    the topics again; returns topic -> tombstones written. Idempotent (a second run writes 0)."""
    _check_tenant(tenant)
    topics = layout_from(settings).compacted_topics()
    live = _live_owned(_latest_is_live(settings, topics), tenant)
    producer = make_producer(settings, "erasure")
    try:
        futures = [
            producer.send(topic, key=key, value=None)
            for topic, keys in live.items()
            for key in keys
        ]
        producer.flush(timeout=READ_TIMEOUT_SECONDS)
        for future in futures:
            future.get(timeout=READ_TIMEOUT_SECONDS)
    except KafkaError as exc:
        raise TransportError(f"tombstones not written: {type(exc).__name__}") from exc
    finally:
        producer.close()
    # Verify from the broker, not from what was sent: every key the tenant ever had on these
    # topics must now end in a tombstone (a write between the two reads shows up here).
    remaining = _live_owned(_latest_is_live(settings, topics), tenant)
    still_live = {topic: len(keys) for topic, keys in remaining.items() if keys}
    if still_live:
        raise ErasureIncompleteError(
            f"keys of the tenant still live after the tombstones: {still_live} "
            "(stop the tenant's extractor work and run the erasure again)"
        )
    return {topic: len(keys) for topic, keys in live.items()}

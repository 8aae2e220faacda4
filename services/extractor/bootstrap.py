"""Rebuild the known set at start-up by reading the extractor's own changes topics.

The extractor owns no database. Its changes topics hold every change it emitted within their
retention, keyed by record identity (one partition per record, so per record in order): reading
them from the beginning to their end offsets and keeping, per record, the newest version (or the
tombstone of a DELETE / of a MERGE's source) gives the set reconciliation compares scans with and
the pollers and the webhook receiver de-duplicate against. Records whose last event expired are
adopted by the next scan (``reconciliation``); an undecodable payload is skipped (counted in the
log), never a crash.

Imports: kafka-python, the core codec/errors and the extractor's known set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from kafka import TopicPartition
from kafka.errors import KafkaError

from services.core.codec import AvroCodec
from services.core.errors import DecodeError, TransportError
from services.core.kafka import make_consumer
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout
from services.extractor.changes import Operation
from services.extractor.known import KnownSet

log = logging.getLogger("tether.extractor.bootstrap")


def rebuild_known(
    settings: TetherSettings,
    codec: AvroCodec,
    layout: TopicLayout,
    tenant: str,
    known: Mapping[tuple[str, str], KnownSet],
    version_order: Mapping[tuple[str, str], Callable[[str | None], int | None]],
    timeout: float = 300.0,
    heartbeat: Callable[[], None] = lambda: None,
) -> int:
    """Apply every change event of the known resources' changes topics; returns how many.

    ``version_order``: per resource, the comparable form of a ``source_version`` (its stream's)."""
    return rebuild_known_many(
        settings, codec, layout, {tenant: known}, version_order, timeout, heartbeat
    )


def rebuild_known_many(
    settings: TetherSettings,
    codec: AvroCodec,
    layout: TopicLayout,
    known: Mapping[str, Mapping[tuple[str, str], KnownSet]],
    version_order: Mapping[tuple[str, str], Callable[[str | None], int | None]],
    timeout: float = 300.0,
    heartbeat: Callable[[], None] = lambda: None,
) -> int:
    """:func:`rebuild_known` for several tenants (``known``: per tenant) in ONE pass over the
    changes topics: an extractor given many tenants at once reads the topics once, not once per
    tenant. The resources' ``version_order`` is the same for every tenant (a stream's rule)."""
    resources = {key for sets in known.values() for key in sets}
    topics = {layout.changes(system, resource) for system, resource in resources}
    consumer = make_consumer(  # no group: reads all, commits nothing
        settings, None, max_poll_records=5000, fetch_max_bytes=64 * 1024 * 1024
    )
    applied = undecodable = 0
    deadline = time.monotonic() + timeout
    try:
        tps: list[TopicPartition] = []
        for topic in sorted(topics):
            # A topic provisioned a moment ago may not be in the broker's metadata yet.
            partitions = consumer.partitions_for_topic(topic) or set()
            while not partitions:
                if time.monotonic() > deadline:
                    raise TransportError(f"changes topic {topic} has no partitions")
                time.sleep(0.1)
                partitions = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, partition) for partition in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TransportError("timed out reading the changes topics")
            heartbeat()  # a long rebuild must not read as a hung process
            for batch in consumer.poll(timeout_ms=500).values():
                for message in batch:
                    if message.value is None:
                        continue
                    try:
                        event = codec.decode(message.value, "ChangeEvent")
                    except DecodeError:
                        undecodable += 1
                        continue
                    sets = known.get(event["tenant"])
                    if sets is None:
                        continue
                    target = sets.get((event["system"], event["resource"]))
                    if target is None:
                        continue
                    version = event.get("source_version")
                    order = version_order[(event["system"], event["resource"])]
                    target.record(
                        event["record_id"],
                        Operation(event["operation"]),
                        version,
                        order(version),
                        event.get("parent_id"),
                        tuple(event.get("merged_ids") or ()),
                    )
                    applied += 1
    except KafkaError as exc:
        raise TransportError(f"cannot read the changes topics: {type(exc).__name__}") from exc
    finally:
        consumer.close()
    if undecodable:
        log.warning("skipped undecodable change events", extra={"fields": {"count": undecodable}})
    return applied

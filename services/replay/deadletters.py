"""Dead letters: list them and re-drive their original bytes into the stage that parked them.

A stage parks input it cannot process on ``<prefix>.deadletters.<stage>`` (``DeadLetter``: the
original payload and key, where it came from, the error). After a fix, ``redrive`` produces each
parked payload — byte for byte, with its original key — back to its source topic, where the
stage consumes it as new input. Only dead letters whose source topic is one the stage consumes
are re-driven (the extractor's come from the APIs, not from a topic: they are listed, never
re-driven).

How far dead letters were re-driven is remembered as the committed offset of the group
``<prefix>-redrive-<stage>`` on the dead-letter topic (committed only after the re-produced
messages are acknowledged), so the next run offers only newer dead letters; ``--all`` starts from
the earliest retained one. Re-driving a payload twice is harmless: a change the mapper has seen
is stale or a no-op, a command the loader has applied is de-duplicated by ``command_id``.

Imports: the core codec/kafka/settings/topics modules and the replay Kafka helpers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from kafka.errors import KafkaError

from services.core.codec import AvroCodec
from services.core.errors import DecodeError, TransportError
from services.core.kafka import make_producer
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout
from services.replay.kafka_ops import KafkaOps
from services.replay.stages import redrive_group, stage_topics

TP = tuple[str, int]


@dataclass(frozen=True)
class ParkedLetter:
    offset: int  # on the dead-letter topic
    partition: int
    dead_letter_id: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    error_class: str
    error_message: str
    first_seen: str
    redrivable: bool
    key: bytes | None
    payload: bytes

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("payload")
        data.pop("key")
        data["payload_bytes"] = len(self.payload)
        return data


@dataclass(frozen=True)
class RedrivePlan:
    stage: str
    topic: str
    group: str
    letters: tuple[ParkedLetter, ...]
    next_offsets: dict[TP, int]
    undecodable: int = 0

    @property
    def redrivable(self) -> list[ParkedLetter]:
        return [d for d in self.letters if d.redrivable]

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "deadletter_topic": self.topic,
            "redrive_group": self.group,
            "dead_letters": len(self.letters),
            "redrivable": len(self.redrivable),
            "undecodable": self.undecodable,
            "letters": [d.summary() for d in self.letters],
        }


def plan_redrive(
    ops: KafkaOps,
    codec: AvroCodec,
    layout: TopicLayout,
    stage: str,
    *,
    from_earliest: bool = False,
    error_class: str | None = None,
) -> RedrivePlan:
    """The dead letters of ``stage`` not re-driven yet (or all retained, ``from_earliest``)."""
    topic = layout.deadletters(stage)
    group = redrive_group(stage, layout.prefix)
    try:
        inputs = set(stage_topics(stage, layout))
    except ValueError:
        inputs = set()  # the extractor: nothing to re-drive into
    ranges = ops.ranges(ops.partitions([topic]))
    committed = {} if from_earliest else ops.committed(group)
    spans = {tp: (max(committed.get(tp, early), early), end) for tp, (early, end) in ranges.items()}
    letters: list[ParkedLetter] = []
    undecodable = 0
    for record in ops.read(spans):
        try:
            datum = codec.decode(record.value, "DeadLetter")
        except DecodeError:
            undecodable += 1
            continue
        if error_class and datum["error_class"] != error_class:
            continue
        source = datum.get("source_topic")
        first_seen = datum.get("first_seen")
        letters.append(
            ParkedLetter(
                offset=record.offset,
                partition=record.partition,
                dead_letter_id=str(datum["dead_letter_id"]),
                source_topic=source,
                source_partition=datum.get("source_partition"),
                source_offset=datum.get("source_offset"),
                error_class=str(datum["error_class"]),
                error_message=str(datum.get("error_message") or ""),
                first_seen=first_seen.isoformat() if isinstance(first_seen, datetime) else "",
                redrivable=source in inputs and bool(datum.get("payload")),
                key=datum.get("key"),
                payload=bytes(datum.get("payload") or b""),
            )
        )
    next_offsets = {tp: end for tp, (_, end) in spans.items()}
    return RedrivePlan(stage, topic, group, tuple(letters), next_offsets, undecodable)


def redrive(settings: TetherSettings, ops: KafkaOps, plan: RedrivePlan) -> int:
    """Produce every re-drivable payload to its source topic, then remember the position."""
    _produce(settings, plan.redrivable)
    # The re-drive group never has members: the reset is always allowed.
    ops.reset(plan.group, plan.next_offsets)
    return len(plan.redrivable)


@dataclass(frozen=True)
class SelectedRedrive:
    """What ``redrive_selected`` did (dead-letter ids, no payloads: nothing personal)."""

    stage: str
    redriven: tuple[str, ...]
    not_redrivable: tuple[str, ...]
    """Named (or pending) but not re-drivable: no source topic the stage consumes."""
    missing: tuple[str, ...]
    """Named but not (or no longer) on the dead-letter topic."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def redrive_selected(
    settings: TetherSettings,
    ops: KafkaOps,
    codec: AvroCodec,
    layout: TopicLayout,
    stage: str,
    dead_letter_ids: Sequence[str] = (),
) -> SelectedRedrive:
    """Re-drive the dead letters of ``stage`` an operator chose (the console's
    REDRIVE_DEAD_LETTERS; the mapper only records the action).

    With ``dead_letter_ids``, exactly those (searched among every retained dead letter; the
    re-drive position is left as it is). Without, every one not re-driven yet, like
    ``tether replay deadletters --execute`` (the position then moves past them). Re-driving a
    payload twice is harmless (see the module docstring)."""
    if not dead_letter_ids:
        plan = plan_redrive(ops, codec, layout, stage)
        redrive(settings, ops, plan)
        return SelectedRedrive(
            stage,
            tuple(d.dead_letter_id for d in plan.redrivable),
            tuple(d.dead_letter_id for d in plan.letters if not d.redrivable),
            (),
        )
    wanted = list(dict.fromkeys(dead_letter_ids))
    plan = plan_redrive(ops, codec, layout, stage, from_earliest=True)
    chosen = {d.dead_letter_id: d for d in plan.letters if d.dead_letter_id in set(wanted)}
    letters = [chosen[i] for i in wanted if i in chosen and chosen[i].redrivable]
    _produce(settings, letters)
    return SelectedRedrive(
        stage,
        tuple(d.dead_letter_id for d in letters),
        tuple(i for i in wanted if i in chosen and not chosen[i].redrivable),
        tuple(i for i in wanted if i not in chosen),
    )


def _produce(settings: TetherSettings, letters: Sequence[ParkedLetter]) -> None:
    """Produce each payload, byte for byte with its key, to its source topic; wait for acks."""
    if letters:
        producer = make_producer(settings, "replay-redrive")
        try:
            futures = [
                producer.send(str(d.source_topic), key=d.key, value=d.payload) for d in letters
            ]
            producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=1)  # raises when the broker refused one
        except KafkaError as exc:
            raise TransportError(f"re-drive produce failed: {type(exc).__name__}") from exc
        finally:
            producer.close(timeout=10)


def render_text(plan: RedrivePlan, *, executed: bool = False) -> str:
    head = "re-drove" if executed else "would re-drive"
    lines = [
        f"dead letters of {plan.stage} on {plan.topic} (position group {plan.group}): "
        f"{len(plan.letters)} listed, {head} {len(plan.redrivable)}"
        + (f", {plan.undecodable} undecodable" if plan.undecodable else "")
    ]
    for d in plan.letters:
        where = (
            f"{d.source_topic}/{d.source_partition}@{d.source_offset}"
            if d.source_topic
            else "(no source topic)"
        )
        mark = "" if d.redrivable else "  [not re-drivable]"
        lines.append(
            f"  {d.partition}@{d.offset} {where} {d.error_class}: {d.error_message[:100]}{mark}"
        )
    return "\n".join(lines) + "\n"


def dumps(plan: RedrivePlan) -> str:
    return json.dumps(plan.to_json(), indent=2) + "\n"

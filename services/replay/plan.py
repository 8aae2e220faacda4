"""The replay plan: what a replay would reprocess, per topic and partition — pure data.

For each partition of the stage's topics the plan holds the group's committed offset (``None``
when the group never committed there), the offset the replay starts from (clamped into the
partition's retained range), the end offset (the next offset to be written) and so the number of
messages that would be consumed again. For the mapper it may also hold its tracking position
(``mapper_positions.next_offset``): inputs below it are skipped as already processed unless the
replay rewinds the tracking rows too.

Imports: standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class PartitionPlan:
    topic: str
    partition: int
    earliest: int
    end: int
    committed: int | None
    start: int
    tracking: int | None = None  # the mapper's tracking row (next offset it will process)
    selected: bool = True  # False: not part of the replay (shown for context only)

    @property
    def count(self) -> int:
        """Messages in ``[start, end)`` (an upper bound: transaction markers take offsets too)."""
        return max(0, self.end - self.start) if self.selected else 0

    @property
    def moves(self) -> bool:
        """True when executing changes the group's committed offset."""
        return self.selected and self.committed != self.start


@dataclass(frozen=True)
class CommandPreview:
    """A command the mapper would write to its outbox (dry run)."""

    command_id: str
    link_id: str
    target: str  # "<system>/<resource>"
    target_id: str | None
    action: str
    caused_by: str
    already_in_outbox: bool


@dataclass(frozen=True)
class Plan:
    stage: str
    group: str
    partitions: tuple[PartitionPlan, ...]
    group_state: str = "unknown"
    group_members: int = 0
    preview: dict[str, Any] | None = field(default=None)

    @property
    def total(self) -> int:
        return sum(p.count for p in self.partitions)

    @property
    def active(self) -> bool:
        return self.group_members > 0

    def with_preview(self, preview: Mapping[str, Any]) -> Plan:
        return replace(self, preview=dict(preview))

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "group": self.group,
            "group_state": self.group_state,
            "group_members": self.group_members,
            "messages": self.total,
            "partitions": [{**asdict(p), "count": p.count} for p in self.partitions],
            "preview": self.preview,
        }


def clamp(offset: int, earliest: int, end: int) -> int:
    """An offset inside the retained range ``[earliest, end]``."""
    return min(max(offset, earliest), end)


def build(
    stage: str,
    group: str,
    ranges: Mapping[tuple[str, int], tuple[int, int]],
    committed: Mapping[tuple[str, int], int],
    targets: Mapping[tuple[str, int], int],
    *,
    tracking: Mapping[tuple[str, int], int] | None = None,
    group_state: str = "unknown",
    group_members: int = 0,
) -> Plan:
    """A plan from per-partition ``(earliest, end)``, committed offsets and start targets.

    Partitions without a target are not replayed (``selected`` False): they keep their offset.
    """
    partitions = []
    for (topic, partition), (earliest, end) in sorted(ranges.items()):
        current = committed.get((topic, partition))
        wanted = targets.get((topic, partition))
        if wanted is None:
            start = clamp(current if current is not None else end, earliest, end)
        else:
            start = clamp(wanted, earliest, end)
        partitions.append(
            PartitionPlan(
                topic,
                partition,
                earliest,
                end,
                current,
                start,
                (tracking or {}).get((topic, partition)),
                wanted is not None,
            )
        )
    return Plan(stage, group, tuple(partitions), group_state, group_members)


def render_text(plan: Plan, *, executed: bool = False) -> str:
    """A table an operator reads before (and after) executing."""
    verb = "offsets reset: will reprocess" if executed else "would reprocess"
    lines = [
        f"stage {plan.stage}: group {plan.group} ({plan.group_state}, "
        f"{plan.group_members} member(s)); {verb} {plan.total} message(s)",
        f"{'topic':<48} {'part':>4} {'committed':>10} {'from':>10} {'to(end)':>10} "
        f"{'messages':>9} {'tracking':>9}",
    ]
    for p in plan.partitions:
        if not p.selected:
            continue
        lines.append(
            f"{p.topic:<48} {p.partition:>4} {_fmt(p.committed):>10} {p.start:>10} {p.end:>10} "
            f"{p.count:>9} {_fmt(p.tracking):>9}"
        )
    if plan.preview is not None:
        lines.append("")
        lines += _preview_lines(plan.preview)
    return "\n".join(lines) + "\n"


def _preview_lines(preview: Mapping[str, Any]) -> list[str]:
    if "skipped" in preview:
        return [f"mapper dry run skipped: {preview['skipped']} (narrow the range or raise it)"]
    lines = [
        f"mapper dry run: {preview.get('inputs', 0)} input(s) read, "
        f"{preview.get('skipped_by_tracking', 0)} skipped as already processed (tracking rows), "
        f"{preview.get('dead_letters', 0)} would be dead letters"
    ]
    results = preview.get("results", {})
    if results:
        lines.append(
            "decisions: " + ", ".join(f"{kind}={count}" for kind, count in sorted(results.items()))
        )
    commands: Iterable[Mapping[str, Any]] = preview.get("commands", [])
    commands = list(commands)
    new = [c for c in commands if not c.get("already_in_outbox")]
    lines.append(
        f"commands that would result: {len(commands)} ({len(new)} new, "
        f"{len(commands) - len(new)} already in the outbox: not sent again)"
    )
    for c in commands:
        mark = "  (already sent)" if c.get("already_in_outbox") else ""
        lines.append(
            f"  {c['action']:<8} {c['target']:<28} link {c['link_id']} "
            f"command {c['command_id']}{mark}"
        )
    return lines


def _fmt(value: int | None) -> str:
    return "-" if value is None else str(value)


def dumps(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=False) + "\n"

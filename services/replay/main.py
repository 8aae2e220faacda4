"""``tether replay``: the operator's CLI for reprocessing a stage and re-driving dead letters.

    tether replay stage mapper|loader SELECTOR [--topic T]... [--partition N]... [--group G]
                        [--execute] [--keep-tracking] [--no-preview] [--json]
    tether replay deadletters extractor|mapper|loader [--all] [--error-class C]
                        [--execute] [--json]

SELECTOR is where the replay starts, for every selected partition: ``--from-time`` (ISO 8601
with a zone, or ``30m``/``2h``/``7d`` ago), ``--from-offset N``, ``--earliest``, or explicit
``--offset TOPIC:PARTITION=OFFSET`` (repeatable; selects those partitions only).

Without ``--execute`` nothing changes anywhere: the plan lists, per topic/partition, the group's
committed offset, the offset the replay would start from, the end offset and the message count;
for the mapper it also runs the mapper's handler over the range in a rolled-back transaction and
lists the commands that would result (``preview``).

With ``--execute`` the tool refuses while the stage's consumer group has members (stop the stage
first), then commits the start offsets for the group; for the mapper it also rewinds the
mapper's tracking rows to them (``--keep-tracking`` leaves them: inputs the mapper has processed
are then skipped again, which only re-delivers unprocessed input). Start the stage afterwards.

Exit codes: 0 done (or dry run), 1 refused (group active, topic missing), 2 usage error.

Imports: the core codec/settings/kafka modules, the mapper's settings, and this package.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg

from services.core.errors import TetherError
from services.core.kafka import layout_from
from services.core.schema_registry import codec_from
from services.core.settings import TetherSettings
from services.mapper.settings import MapperSettings
from services.replay import deadletters, plan, preview
from services.replay.kafka_ops import KafkaOps, ReplayRefusedError
from services.replay.stages import NOT_REPLAYABLE, REPLAYABLE, stage

TP = tuple[str, int]
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
PREVIEW_LIMIT = 50_000
_OFFSET = re.compile(r"^(?P<topic>[^:]+):(?P<partition>\d+)=(?P<offset>\d+)$")


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 with a zone (``2026-11-20T10:00:00Z``) or a duration ago (``90m``, ``2h``)."""
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from exc
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a zone (e.g. Z or +01:00): {text!r}")
    return when


def parse_offset(text: str) -> tuple[TP, int]:
    match = _OFFSET.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected TOPIC:PARTITION=OFFSET, got {text!r}")
    return (match["topic"], int(match["partition"])), int(match["offset"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether replay", description="Reprocess a stage or re-drive dead letters."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    st = sub.add_parser("stage", help="reprocess a stage from a time or an offset")
    st.add_argument("stage", choices=[*REPLAYABLE, *NOT_REPLAYABLE])
    where = st.add_mutually_exclusive_group(required=True)
    where.add_argument("--from-time", type=parse_time, help="ISO 8601 with zone, or 30m/2h/7d")
    where.add_argument("--from-offset", type=int, help="the same offset on every partition")
    where.add_argument("--earliest", action="store_true", help="the earliest retained offset")
    where.add_argument(
        "--offset", type=parse_offset, action="append", help="TOPIC:PARTITION=OFFSET (repeatable)"
    )
    st.add_argument("--topic", action="append", help="only this input topic (repeatable)")
    st.add_argument("--partition", type=int, action="append", help="only this partition")
    st.add_argument("--group", help="the stage's consumer group (default: the service's)")
    st.add_argument("--execute", action="store_true", help="reset the offsets (default: dry run)")
    st.add_argument(
        "--keep-tracking",
        action="store_true",
        help="mapper: leave its tracking rows (processed inputs are skipped again)",
    )
    st.add_argument("--no-preview", action="store_true", help="mapper: skip the command preview")
    st.add_argument(
        "--preview-limit",
        type=int,
        default=PREVIEW_LIMIT,
        help="mapper: skip the preview above this many messages (it holds them in memory)",
    )
    st.add_argument("--json", action="store_true", help="print the plan as JSON")

    dl = sub.add_parser("deadletters", help="list dead letters and re-drive them into the stage")
    dl.add_argument("stage", choices=["extractor", *REPLAYABLE])
    dl.add_argument("--all", action="store_true", help="from the earliest retained dead letter")
    dl.add_argument("--error-class", help="only dead letters of this error class")
    dl.add_argument("--execute", action="store_true", help="re-drive (default: list only)")
    dl.add_argument("--json", action="store_true", help="print the list as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "stage":
            return _stage(parser, args)
        return _deadletters(args)
    except ReplayRefusedError as exc:
        sys.stderr.write(f"tether replay: refused: {exc}\n")
        return 1
    except TetherError as exc:
        sys.stderr.write(f"tether replay: {type(exc).__name__}: {exc}\n")
        return 1
    except psycopg.Error as exc:
        sys.stderr.write(f"tether replay: PostgreSQL: {type(exc).__name__}: {exc}\n")
        return 1


def _stage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.stage in NOT_REPLAYABLE:
        parser.error(f"{args.stage}: {NOT_REPLAYABLE[args.stage]}")
    mapper_settings: MapperSettings | None = None
    if args.stage == "mapper":
        mapper_settings = MapperSettings.load()
        settings: TetherSettings = mapper_settings
    else:
        settings = TetherSettings.load()
    layout = layout_from(settings)
    the_stage = stage(
        args.stage,
        layout,
        args.group,
        mapper_settings.group_id if mapper_settings is not None else None,
    )
    explicit: dict[TP, int] = dict(args.offset or [])
    topics = list(the_stage.topics)
    wanted_topics = set(args.topic or []) | {t for t, _ in explicit}
    unknown = sorted(wanted_topics - set(topics))
    if unknown:
        parser.error(f"not an input topic of the {args.stage}: {unknown} (inputs: {topics})")
    if wanted_topics:
        topics = [t for t in topics if t in wanted_topics]

    ops = KafkaOps(settings)
    try:
        tps = ops.partitions(topics)
        if args.partition:
            tps = [tp for tp in tps if tp[1] in set(args.partition)]
        if explicit:
            missing = sorted(set(explicit) - set(tps))
            if missing:
                parser.error(f"no such partition(s): {missing}")
            tps = [tp for tp in tps if tp in explicit]
        ranges = ops.ranges(tps)
        if args.from_time is not None:
            targets = ops.offsets_for_time(tps, int(args.from_time.timestamp() * 1000))
        elif args.from_offset is not None:
            targets = dict.fromkeys(tps, args.from_offset)
        elif args.earliest:
            targets = {tp: ranges[tp][0] for tp in tps}
        else:
            targets = {tp: explicit[tp] for tp in tps}
        state, members = ops.group_state(the_stage.group_id)
        tracking = None
        if mapper_settings is not None:
            tracking = preview.tracking_positions(
                mapper_settings.postgres_dsn.get_secret_value(), the_stage.group_id
            )
        the_plan = plan.build(
            args.stage,
            the_stage.group_id,
            ranges,
            ops.committed(the_stage.group_id),
            targets,
            tracking=tracking,
            group_state=state,
            group_members=members,
        )
        rewind = mapper_settings is not None and not args.keep_tracking
        if args.execute:
            starts = {(p.topic, p.partition): p.start for p in the_plan.partitions if p.selected}
            ops.reset(the_stage.group_id, starts)  # refuses an active group
            if mapper_settings is not None and rewind:
                preview.rewind_tracking(
                    mapper_settings.postgres_dsn.get_secret_value(), the_stage.group_id, starts
                )
            tracking_after = (
                preview.tracking_positions(
                    mapper_settings.postgres_dsn.get_secret_value(), the_stage.group_id
                )
                if mapper_settings is not None
                else None
            )
            after = plan.build(
                args.stage,
                the_stage.group_id,
                ranges,
                ops.committed(the_stage.group_id),
                starts,
                tracking=tracking_after,
                group_state=state,
                group_members=members,
            )
            _write(plan.dumps(after) if args.json else plan.render_text(after, executed=True))
            return 0
        if mapper_settings is not None and not args.no_preview:
            if the_plan.total > args.preview_limit:
                summary: dict[str, object] = {
                    "skipped": f"{the_plan.total} messages > --preview-limit {args.preview_limit}"
                }
            else:
                spans = {(p.topic, p.partition): (p.start, p.end) for p in the_plan.partitions}
                summary = preview.preview(
                    ops.read(spans),
                    dsn=mapper_settings.postgres_dsn.get_secret_value(),
                    group=the_stage.group_id,
                    codec=codec_from(settings),
                    layout=layout,
                    policy=mapper_settings.install_dataflow(),
                    max_deletes_per_hour=mapper_settings.mapper_max_deletes_per_hour,
                    rewind=rewind,
                )
            the_plan = the_plan.with_preview(summary)
        _write(plan.dumps(the_plan) if args.json else plan.render_text(the_plan))
        return 0
    finally:
        ops.close()


def _deadletters(args: argparse.Namespace) -> int:
    settings: TetherSettings = TetherSettings.load()
    layout = layout_from(settings)
    ops = KafkaOps(settings)
    try:
        the_plan = deadletters.plan_redrive(
            ops,
            codec_from(settings),
            layout,
            args.stage,
            from_earliest=args.all,
            error_class=args.error_class,
        )
        if args.execute:
            deadletters.redrive(settings, ops, the_plan)
        text = (
            deadletters.dumps(the_plan)
            if args.json
            else deadletters.render_text(the_plan, executed=args.execute)
        )
        _write(text)
        return 0
    finally:
        ops.close()


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()

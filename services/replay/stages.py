"""The replayable stages: the topics each consumes and the consumer group it commits offsets in.

Topic names come from ``TopicLayout`` (``services.core.topics``), group ids from the services'
own conventions: the mapper's ``MapperSettings.group_id`` (``TETHER_MAPPER_GROUP_ID`` or
``<prefix>-mapper``) and the loader's ``<prefix>-loader``. ``--group`` overrides both.

Imports: the core topics module and the mapper's settings (for its group id).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core.topics import TopicLayout

REPLAYABLE = ("mapper", "loader")
NOT_REPLAYABLE = {
    "extractor": "the extractor consumes no Kafka topic (it reads the SaaS APIs): nothing to "
    "replay; re-drive its dead letters or let reconciliation find drift",
}


@dataclass(frozen=True)
class Stage:
    name: str
    topics: tuple[str, ...]
    group_id: str


def stage_topics(name: str, layout: TopicLayout) -> tuple[str, ...]:
    """The topics the stage consumes (and may replay)."""
    if name == "mapper":
        return (*layout.all_changes(), layout.outcomes, layout.operator_actions)
    if name == "loader":
        return tuple(layout.all_commands())
    raise ValueError(NOT_REPLAYABLE.get(name, f"unknown stage {name!r}"))


def default_group(name: str, prefix: str, mapper_group_id: str | None = None) -> str:
    """The consumer group the stage's service commits in (see the module docstring)."""
    if name == "mapper":
        return mapper_group_id or f"{prefix}-mapper"
    if name == "loader":
        return f"{prefix}-loader"
    raise ValueError(NOT_REPLAYABLE.get(name, f"unknown stage {name!r}"))


def redrive_group(stage: str, prefix: str) -> str:
    """The group that remembers how far dead letters of ``stage`` were re-driven."""
    return f"{prefix}-redrive-{stage}"


def stage(
    name: str, layout: TopicLayout, group: str | None = None, mapper_group_id: str | None = None
) -> Stage:
    return Stage(
        name,
        stage_topics(name, layout),
        group or default_group(name, layout.prefix, mapper_group_id),
    )

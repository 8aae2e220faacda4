"""The dataflow configuration: which resources sync, which properties, match rules and policy.

A dataflow file (``dataflows/default.json``, JSON Schema ``dataflows/dataflow.schema.json``) is
validated into ``Dataflow`` and compiled into the registries the decision code reads: the
``Hub``, the ``CanonicalProperty``s, one ``FlowSpec`` per member resource, and the ``Policy``.
The shipped default compiles to exactly the flows, properties and policy of the release before
dataflow files (a test proves it), so an operator can change the mapping without code.

Shape (roles, not systems: the *hub* is the record every member links to; the *members* are
records of the flows' systems; which systems play them is data)::

    version: 1
    hub:        {system, resource}
    properties: [{name, kind, hub_field, match_key?}]          # declared once, carried by the hub
    flows:      [{label, system, resource,
                  properties: [{property, field, direction, when?}],
                  match: [{key, field}], inactive_when: {field, is},
                  create_fields?, parent_field?}]
    policy:     services.mapper.domain.policy.Policy

``kind`` is the normaliser/comparison form (``normalize.ValueKind``); ``when``/``inactive_when``
are ``{"field": F, "is": true|false}`` (``mappings.FieldIs``). What the pipeline can execute
limits what a file may say, and validation says so instead of letting commands dead-letter
later. The wiring passes what it registers (``Registered``: each system's resources, and the
field accessors of each system that can be the hub): the hub and every flow must name a
registered system and resource, a hub field must be one the hub's accessors know under its
canonical name, a conflict rule's winner must be a system of the dataflow, and ``direction`` is
``both`` (one-way properties are not implemented yet).

Errors name the offending place as a path (``flows[1].properties[0].property``) so that the
shell (``services.mapper.dataflow_file``) can report "file: path: message".

Pure module: it imports no I/O library (reading the file is the shell's job).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from services.mapper.domain.mappings import (
    ALWAYS,
    CanonicalProperty,
    FieldIs,
    FlowSpec,
    Hub,
    HubAccessors,
    JsonScalar,
    KeyKind,
    MatchRule,
    PropertyMap,
)
from services.mapper.domain.normalize import ValueKind
from services.mapper.domain.policy import Policy

SCHEMA_VERSION = 1

_NATURAL_KEY: dict[ValueKind, KeyKind] = {
    ValueKind.EMAIL: KeyKind.EMAIL,
    ValueKind.PHONE: KeyKind.PHONE,
}
"""The only match key a value kind can yield (names identify no one)."""


@dataclass(frozen=True)
class Registered:
    """What the wiring registers, against which a dataflow is validated and compiled."""

    resources: Mapping[str, tuple[str, ...]]
    """System -> the resources its connector syncs."""
    hubs: Mapping[str, HubAccessors]
    """System -> the field accessors of its records, for each system that can be the hub."""


_CONTEXT_KEY = "registered"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Condition(_Model):
    """``record[field] is <true|false>``; an absent or null field does not hold."""

    field: str = Field(min_length=1, description="The member record's field (PascalCase).")
    is_: bool = Field(alias="is", description="The JSON boolean the field must be.")

    def compile(self) -> FieldIs:
        return FieldIs(self.field, self.is_)


class HubSide(_Model):
    """The hub of every link (a role): one resource of a registered system."""

    system: str = Field(min_length=1, description="The hub's system (a registered connector).")
    resource: str = Field(min_length=1, description="The hub's resource.")


class PropertyDecl(_Model):
    """A synced property, declared once: its value kind and where the hub keeps it."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", description="Canonical name, used in policies and flows."
    )
    kind: ValueKind = Field(
        description="Normaliser and comparison form: name (whitespace collapsed), email "
        "(case-folded), phone (E.164)."
    )
    hub_field: str = Field(
        description="The hub's field path, e.g. info.name.first or info.emails[primary].email."
    )
    match_key: KeyKind | None = Field(
        None, description="The match key the property's values yield (email/phone), if any."
    )


class FlowProperty(_Model):
    """One row of a flow: a declared property <-> the member resource's field."""

    property: str = Field(description="A name from the top-level properties.")
    field: str = Field(min_length=1, description="The member record's field (PascalCase).")
    direction: Literal["both"] = Field(
        "both", description="Which way values flow; only two-way is implemented."
    )
    when: Condition | None = Field(
        None, description="Only records meeting this carry the property (default: every one)."
    )


class MatchDecl(_Model):
    """A match rule: the normalized value of a member field, looked up among hub keys."""

    key: KeyKind = Field(description="The kind of key (email/phone).")
    field: str = Field(min_length=1, description="The member field (synced or not).")


class FlowDecl(_Model):
    """Everything synced of one member resource."""

    label: str = Field(min_length=1, description="A short name (the spec's flow letter).")
    system: str = Field(min_length=1, description="The member's system (a registered connector).")
    resource: str = Field(description="The member resource (employees, customers, ...).")
    properties: tuple[FlowProperty, ...] = Field(min_length=1)
    match: tuple[MatchDecl, ...] = Field(
        description="Tried in order; the first rule yielding a valid key is used."
    )
    inactive_when: Condition = Field(description="Archived/inactive records are unlinked.")
    create_fields: dict[str, JsonScalar] = Field(
        default_factory=dict, description="Fixed fields of a create in the member system."
    )
    parent_field: str | None = Field(
        None, description="The field holding the parent id (contact persons: ContactId)."
    )


class Dataflow(_Model):
    """A whole dataflow file."""

    schema_ref: str | None = Field(
        None, alias="$schema", description="Editors' schema reference; ignored."
    )
    version: Literal[1] = Field(description="The file format's version.")
    description: str | None = None
    hub: HubSide
    properties: tuple[PropertyDecl, ...] = Field(min_length=1)
    flows: tuple[FlowDecl, ...] = Field(min_length=1)
    policy: Policy = Field(default_factory=Policy)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Dataflow:
        context = info.context if isinstance(info.context, Mapping) else {}
        registered = context.get(_CONTEXT_KEY)
        if not isinstance(registered, Registered):
            raise ValueError(
                "validated without the registered systems (use Dataflow.from_mapping/from_json "
                "with the wiring's Registered)"
            )
        problems = _problems(self, registered)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def compile(self, registered: Registered) -> CompiledDataflow:
        """The registries the decision code reads (see ``mappings.use_dataflow``);
        ``registered`` is what the file was validated against."""
        hub = Hub(self.hub.system, self.hub.resource, registered.hubs[self.hub.system])
        props = {p.name: _compile_property(p) for p in self.properties}
        flows = {f.resource: _compile_flow(f, props) for f in self.flows}
        return CompiledDataflow(hub=hub, properties=props, flows=flows, policy=self.policy)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], registered: Registered) -> Dataflow:
        return cls.model_validate(dict(data), context={_CONTEXT_KEY: registered})

    @classmethod
    def from_json(cls, text: str | bytes, registered: Registered) -> Dataflow:
        return cls.model_validate_json(text, context={_CONTEXT_KEY: registered})


@dataclass(frozen=True)
class CompiledDataflow:
    """A validated dataflow in the domain's terms."""

    hub: Hub
    properties: Mapping[str, CanonicalProperty]
    flows: Mapping[str, FlowSpec]
    policy: Policy

    @property
    def systems(self) -> set[str]:
        """The hub's system and every member flow's."""
        return {self.hub.system, *(flow.system for flow in self.flows.values())}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a dataflow file (what ``tether dataflow schema`` prints)."""
    schema = Dataflow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --------------------------------------------------------------------------------------------
# validation beyond single fields (each problem names its path)
# --------------------------------------------------------------------------------------------


def _resource_problem(where: str, system: str, resource: str, registered: Registered) -> str | None:
    if system not in registered.resources:
        return (
            f"{where}.system: {system!r} is not a registered system; "
            f"registered: {sorted(registered.resources)}"
        )
    resources = registered.resources[system]
    if resource not in resources:
        return (
            f"{where}.resource: {resource!r} is not a {system} resource; known: {list(resources)}"
        )
    return None


def _hub_problems(dataflow: Dataflow, registered: Registered) -> list[str]:
    hub = dataflow.hub
    problem = _resource_problem("hub", hub.system, hub.resource, registered)
    if problem is not None:
        return [problem]
    if hub.system not in registered.hubs:
        return [
            f"hub.system: {hub.system!r} cannot be the hub (no field accessors registered); "
            f"can be: {sorted(registered.hubs)}"
        ]
    return []


def _problems(dataflow: Dataflow, registered: Registered) -> list[str]:
    problems = _hub_problems(dataflow, registered)
    hub_fields = registered.hubs[dataflow.hub.system].fields if not problems else None
    declared: dict[str, PropertyDecl] = {}
    for i, prop in enumerate(dataflow.properties):
        where = f"properties[{i}]"
        if prop.name in declared:
            problems.append(f"{where}.name: property {prop.name!r} is declared twice")
        declared[prop.name] = prop
        # (when the hub itself is wrong its fields cannot be checked)
        if hub_fields is not None and prop.hub_field not in hub_fields:
            problems.append(
                f"{where}.hub_field: {prop.hub_field!r} is not a hub field Tether can read and "
                f"write; known: {sorted(hub_fields)}"
            )
        natural = _NATURAL_KEY.get(prop.kind)
        if prop.match_key is not None and prop.match_key != natural:
            problems.append(
                f"{where}.match_key: a {prop.kind.value} value cannot yield a "
                f"{prop.match_key.value} key"
            )
    seen_resources: set[str] = set()
    seen_labels: set[str] = set()
    for i, f in enumerate(dataflow.flows):
        where = f"flows[{i}]"
        problem = _resource_problem(where, f.system, f.resource, registered)
        if problem is not None:
            problems.append(problem)
        elif (f.system, f.resource) == (dataflow.hub.system, dataflow.hub.resource):
            problems.append(f"{where}.resource: the hub's resource cannot be a member flow")
        if f.resource in seen_resources:
            problems.append(f"{where}.resource: a second flow for {f.resource!r}")
        seen_resources.add(f.resource)
        if f.label in seen_labels:
            problems.append(f"{where}.label: label {f.label!r} is used twice")
        seen_labels.add(f.label)
        mapped: set[str] = set()
        for j, row in enumerate(f.properties):
            if row.property not in declared:
                problems.append(
                    f"{where}.properties[{j}].property: unknown property {row.property!r}; "
                    f"declared: {sorted(declared)}"
                )
            if row.property in mapped:
                problems.append(
                    f"{where}.properties[{j}].property: {row.property!r} is mapped twice"
                )
            mapped.add(row.property)
    unknown_rules = sorted(set(dataflow.policy.conflict_rules) - set(declared))
    if unknown_rules:
        problems.append(f"policy.conflict_rules: unknown properties {unknown_rules}")
    systems = {dataflow.hub.system, *(f.system for f in dataflow.flows)}
    problems.extend(f"policy: {why}" for why in policy_problems(dataflow.policy, systems))
    return problems


def policy_problems(policy: Policy, systems: set[str]) -> list[str]:
    """Why ``policy`` does not fit a dataflow syncing ``systems`` (a winner it does not sync)."""
    return [
        f"the conflict rule winner {system!r} is not a system of the dataflow "
        f"({', '.join(sorted(systems))})"
        for system in sorted(policy.winners - systems)
    ]


# --------------------------------------------------------------------------------------------
# compilation
# --------------------------------------------------------------------------------------------


def _compile_property(decl: PropertyDecl) -> CanonicalProperty:
    return CanonicalProperty(decl.name, decl.kind, decl.hub_field, decl.match_key)


def _compile_flow(decl: FlowDecl, props: Mapping[str, CanonicalProperty]) -> FlowSpec:
    return FlowSpec(
        name=decl.resource,
        system=decl.system,
        label=decl.label,
        properties=tuple(
            PropertyMap(
                props[row.property],
                row.field,
                applies=row.when.compile() if row.when is not None else ALWAYS,
            )
            for row in decl.properties
        ),
        match_rules=tuple(MatchRule(rule.key, rule.field) for rule in decl.match),
        is_inactive=decl.inactive_when.compile(),
        create_fields=dict(decl.create_fields),
        parent_field=decl.parent_field,
    )

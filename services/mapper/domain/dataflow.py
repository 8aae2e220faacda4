"""The dataflow configuration: which resources sync, which properties, match rules and policy.

A dataflow file (``dataflows/default.json``, JSON Schema ``dataflows/dataflow.schema.json``) is
validated into ``Dataflow`` and compiled into the registries the decision code reads: the
``CanonicalProperty``s, one ``FlowSpec`` per member resource, and the ``Policy``. The shipped
default compiles to exactly the built-in ``mappings.FLOWS``/``PROPERTIES`` and ``Policy()``
(a test proves it), so an operator can change the mapping without code.

Shape (roles, not systems: the *hub* is the record every member links to, today a Wix contact;
the *members* are PowerOffice records)::

    version: 1
    hub:        {system, resource}
    properties: [{name, kind, hub_field, match_key?}]          # declared once, carried by the hub
    flows:      [{label, system, resource,
                  properties: [{property, field, direction, when?}],
                  match: [{key, field}], inactive_when: {field, is},
                  create_fields?, parent_field?}]
    policy:     services.mapper.domain.policy.Policy

``kind`` is the normaliser/comparison form (``normalize.ValueKind``); ``when``/``inactive_when``
are ``{"field": F, "is": true|false}`` (``mappings.FieldIs``). What the rest of the pipeline can
execute today limits what a file may say, and validation says so instead of letting commands
dead-letter later: the hub is ``wix``/``contacts``, members are PowerOffice's three resources, a
hub field must be one the Wix client writes (``mappings.WIX_READERS``) under its canonical name,
and ``direction`` is ``both`` (one-way properties are not implemented yet).

Errors name the offending place as a path (``flows[1].properties[0].property``) so that the
shell (``services.mapper.dataflow_file``) can report "file: path: message".

Pure module: it imports no I/O library (reading the file is the shell's job).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.mapper.domain.identity import POWEROFFICE, SYSTEM_RESOURCES
from services.mapper.domain.mappings import (
    ALWAYS,
    WIX_READERS,
    CanonicalProperty,
    FieldIs,
    FlowSpec,
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


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Condition(_Model):
    """``record[field] is <true|false>``; an absent or null field does not hold."""

    field: str = Field(min_length=1, description="The member record's field (PascalCase).")
    is_: bool = Field(alias="is", description="The JSON boolean the field must be.")

    def compile(self) -> FieldIs:
        return FieldIs(self.field, self.is_)


class HubSide(_Model):
    """The hub of every link (a role): today the Wix contact."""

    system: Literal["wix"] = Field(description="The hub's system.")
    resource: Literal["contacts"] = Field(description="The hub's resource.")


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
    system: Literal["poweroffice"] = Field(description="The member's system.")
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
    def _consistent(self) -> Dataflow:
        problems = _problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def compile(self) -> CompiledDataflow:
        """The registries the decision code reads (see ``mappings.use_dataflow``)."""
        props = {p.name: _compile_property(p) for p in self.properties}
        flows = {f.resource: _compile_flow(f, props) for f in self.flows}
        return CompiledDataflow(properties=props, flows=flows, policy=self.policy)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Dataflow:
        return cls.model_validate(dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> Dataflow:
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class CompiledDataflow:
    """A validated dataflow in the domain's terms."""

    properties: Mapping[str, CanonicalProperty]
    flows: Mapping[str, FlowSpec]
    policy: Policy


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a dataflow file (what ``tether dataflow schema`` prints)."""
    schema = Dataflow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --------------------------------------------------------------------------------------------
# validation beyond single fields (each problem names its path)
# --------------------------------------------------------------------------------------------


def _problems(dataflow: Dataflow) -> list[str]:
    problems: list[str] = []
    declared: dict[str, PropertyDecl] = {}
    for i, prop in enumerate(dataflow.properties):
        where = f"properties[{i}]"
        if prop.name in declared:
            problems.append(f"{where}.name: property {prop.name!r} is declared twice")
        declared[prop.name] = prop
        known = WIX_READERS.get(prop.hub_field)
        if known is None:
            problems.append(
                f"{where}.hub_field: {prop.hub_field!r} is not a hub field Tether can read and "
                f"write; known: {sorted(WIX_READERS)}"
            )
        elif known[0] != prop.name:
            problems.append(
                f"{where}.name: the hub field {prop.hub_field!r} is written under the name "
                f"{known[0]!r}; name the property {known[0]!r}"
            )
        natural = _NATURAL_KEY.get(prop.kind)
        if prop.match_key is not None and prop.match_key != natural:
            problems.append(
                f"{where}.match_key: a {prop.kind.value} value cannot yield a "
                f"{prop.match_key.value} key"
            )
    resources = SYSTEM_RESOURCES[POWEROFFICE]
    seen_resources: set[str] = set()
    seen_labels: set[str] = set()
    for i, f in enumerate(dataflow.flows):
        where = f"flows[{i}]"
        if f.resource not in resources:
            problems.append(
                f"{where}.resource: {f.resource!r} is not a {POWEROFFICE} resource; "
                f"known: {list(resources)}"
            )
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
    return problems


# --------------------------------------------------------------------------------------------
# compilation
# --------------------------------------------------------------------------------------------


def _compile_property(decl: PropertyDecl) -> CanonicalProperty:
    _name, reader = WIX_READERS[decl.hub_field]
    return CanonicalProperty(decl.name, decl.kind, decl.hub_field, reader, decl.match_key)


def _compile_flow(decl: FlowDecl, props: Mapping[str, CanonicalProperty]) -> FlowSpec:
    return FlowSpec(
        name=decl.resource,
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

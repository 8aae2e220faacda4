"""Declarative property mappings: the hub's properties, one ``FlowSpec`` per member resource,
read/write helpers.

A link joins one *hub* record with *member* records (roles, not systems: which systems and
resources play them is the dataflow's ``hub`` and ``flows``). The dataflow's tables become data
here:

* a ``CanonicalProperty`` names a synced property (``first_name``, ``email``, ...), its
  ``ValueKind``, the hub field path it lives at and the match key its values yield;
* ``HubAccessors`` read a hub record: one reader per field path, the record's identifying values,
  its revision and its write form. They are the hub connector's knowledge, installed by the
  wiring (``use_dataflow``), never written here;
* a ``PropertyMap`` ties a canonical property to the member field of one flow, optionally only
  for some records (``applies``: a company customer has no person name to sync);
* a ``FlowSpec`` lists a flow's property maps, its match rules (which keys find an existing hub
  record), when a record counts as archived/inactive, and the fixed fields of a create.

The registries (``hub()``, ``FLOWS``, ``PROPERTIES``) are empty until a dataflow is installed;
importing ``services.mapper`` installs the shipped default (``services.mapper.wiring``), the
mapper's ``main`` the configured one. The decision code never names a system or a field.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias

from services.core.errors import ContractError
from services.mapper.domain.normalize import (
    IssueCode,
    ValueKind,
    check,
    clean,
    is_valid_email,
    normalize_email,
    phone_e164,
)

JsonScalar: TypeAlias = str | int | float | bool | None
Props: TypeAlias = dict[str, str | None]
"""Canonical property name -> display value (``None`` = empty). A missing key = not mapped."""
Record: TypeAlias = Mapping[str, Any]


class KeyKind(StrEnum):
    """Kinds of match keys."""

    EMAIL = "email"
    PHONE = "phone"


class MatchKey(NamedTuple):
    """A normalized value a record can be matched on, e.g. ``("email", "ola@example.no")``."""

    kind: str
    value: str


@dataclass(frozen=True)
class Issue:
    """A validation issue of one property value (the value is still synced as typed)."""

    property: str
    code: IssueCode


# --------------------------------------------------------------------------------------------
# The hub and its properties
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanonicalProperty:
    """A synced property: its canonical name, value kind and the hub's field path."""

    name: str
    kind: ValueKind
    hub_field: str
    """The hub record's field path (``HubAccessors.fields`` reads it), e.g. ``info.name.first``."""
    key_kind: KeyKind | None = None
    """The match-key kind its values produce, if it can identify a record."""


FieldReader: TypeAlias = Callable[[Record], str | None]


@dataclass(frozen=True)
class HubAccessors:
    """How the domain reads the hub's records: the hub connector's accessors, keyed by the
    dataflow's ``hub_field`` paths. The wiring installs them with the dataflow
    (``use_dataflow``); the domain itself knows no system's record shape."""

    fields: Mapping[str, FieldReader]
    """Field path -> reader of its display value (commands write the hub by the same paths). A
    dataflow file can map only these paths."""
    identifiers: Callable[[Record], Iterable[tuple[KeyKind, object]]]
    """Every value a record can be found by (e.g. each e-mail and phone item), not only the
    mapped ones; normalised into match keys by the domain."""
    has_other_items: Callable[[Record], bool]
    """Whether the record keeps identifying values besides the mapped ones (so clearing every
    mapped property would not leave it empty)."""
    revision: Callable[[Record], int | None]
    """The record's own revision, when it carries one (orders changes before timestamps do)."""
    write_form: Callable[[ValueKind, str | None], str | None]
    """A value as the hub stores it (e.g. phones in E.164): what a command writes there."""


@dataclass(frozen=True)
class Hub:
    """The hub role of every link: which system/resource holds it and how its records read."""

    system: str
    resource: str
    accessors: HubAccessors


class _Installed:
    """The hub installed by ``use_dataflow`` (one per process, like ``FLOWS``)."""

    hub: Hub | None = None


def hub() -> Hub:
    """The installed hub; ``ContractError`` before a dataflow is installed."""
    installed = _Installed.hub
    if installed is None:
        raise ContractError("no dataflow installed (services.mapper installs the shipped one)")
    return installed


def is_hub(system: str, resource: str) -> bool:
    """Whether ``system``/``resource`` is the hub's (on the hot path: every member's ``mapped``
    asks it, hence no call to ``hub()``)."""
    installed = _Installed.hub
    if installed is None:
        raise ContractError("no dataflow installed (services.mapper installs the shipped one)")
    return system == installed.system and resource == installed.resource


PROPERTIES: dict[str, CanonicalProperty] = {}
"""Every canonical property, keyed by name; the hub carries all of them (filled by
``use_dataflow`` from the dataflow file)."""

CONTACT_DATA_PROPERTIES: tuple[str, ...] = ("first_name", "last_name", "email", "phone")
"""A hub record must keep at least one of these (or another identifying item)."""


def kind_of(name: str) -> ValueKind:
    """The value kind of a canonical property."""
    return PROPERTIES[name].kind


# --------------------------------------------------------------------------------------------
# Member flows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Always:
    """The condition that holds for every record (a property every record carries)."""

    def __call__(self, _record: Record) -> bool:
        return True


@dataclass(frozen=True)
class FieldIs:
    """The condition ``record[field] is value`` for a JSON boolean: an absent or ``null`` field,
    or any other value, does not hold. Data, not code, so that a dataflow file can state it and
    two specs with the same conditions compare equal."""

    field: str
    value: bool

    def __call__(self, record: Record) -> bool:
        return record.get(self.field) is self.value


ALWAYS = Always()


@dataclass(frozen=True)
class PropertyMap:
    """One row of a flow: canonical property <-> the member resource's field."""

    prop: CanonicalProperty
    member_field: str
    applies: Callable[[Record], bool] = ALWAYS
    """Whether a given record carries this property (evaluated on every observation)."""

    @property
    def name(self) -> str:
        return self.prop.name


@dataclass(frozen=True)
class MatchRule:
    """Match on the normalized value of a member field (synced or not)."""

    key_kind: KeyKind
    member_field: str


@dataclass(frozen=True)
class FlowSpec:
    """Everything the mapper knows about one member resource."""

    name: str
    """The member resource (e.g. ``employees``); flows are keyed by it."""
    system: str
    """The member resource's system."""
    label: str
    """The spec's flow letter."""
    properties: tuple[PropertyMap, ...]
    match_rules: tuple[MatchRule, ...]
    """Tried in order; the FIRST rule that yields a valid key is used (employees: e-mail, else
    phone). A record whose rules yield no key matches nothing."""
    is_inactive: Callable[[Record], bool]
    """Archived/inactive records are unlinked, never created."""
    create_fields: Mapping[str, JsonScalar] = field(default_factory=dict)
    """Fixed fields of a member create (e.g. ``IsPerson: true`` for a private customer)."""
    parent_field: str | None = None
    """Field holding the parent id (contact persons: ``ContactId``)."""

    def property_map(self, name: str) -> PropertyMap | None:
        for pmap in self.properties:
            if pmap.name == name:
                return pmap
        return None

    @property
    def property_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.properties)


FLOWS: dict[str, FlowSpec] = {}
"""Flow registry, keyed by member resource (filled by ``use_dataflow`` from the dataflow file)."""


def use_dataflow(
    the_hub: Hub, flows: Mapping[str, FlowSpec], properties: Mapping[str, CanonicalProperty]
) -> None:
    """Make ``the_hub``, ``flows`` and ``properties`` (built from a validated dataflow file, see
    ``dataflow``) what every function of the domain reads. Called at process start, before any
    change is handled: the registries are replaced in place so that every module holding a
    reference to ``FLOWS``/``PROPERTIES`` sees the new content."""
    FLOWS.clear()
    FLOWS.update(flows)
    PROPERTIES.clear()
    PROPERTIES.update(properties)
    _Installed.hub = the_hub


def flow_for(resource: str) -> FlowSpec:
    """The flow of a member resource; ``ContractError`` for a resource with no flow."""
    try:
        return FLOWS[resource]
    except KeyError:
        raise ContractError(f"no mapping flow for member resource {resource!r}") from None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What one side says about the synced properties of one record."""

    props: Props
    raw: dict[str, JsonScalar]
    """Field -> value exactly as read (a member's JSON Patch ``test`` guards need it)."""
    issues: tuple[Issue, ...] = ()
    has_other_items: bool = False
    """Hub: the record keeps identifying items besides the mapped ones."""


def _raw(value: Any) -> JsonScalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _issues(props: Props) -> tuple[Issue, ...]:
    found = []
    for name, value in props.items():
        code = check(kind_of(name), value)
        if code is not None:
            found.append(Issue(name, code))
    return tuple(found)


def observe_member(resource: str, record: Record) -> Reading:
    """Read the mapped properties (those that apply to this record) of a member record."""
    flow = flow_for(resource)
    props: Props = {}
    raw: dict[str, JsonScalar] = {}
    for pmap in flow.properties:
        if not pmap.applies(record):
            continue
        value = record.get(pmap.member_field)
        props[pmap.name] = clean(value)
        raw[pmap.member_field] = _raw(value)
    return Reading(props=props, raw=raw, issues=_issues(props))


def read_member(resource: str, record: Record) -> Props:
    """Canonical props of a member record (display form)."""
    return observe_member(resource, record).props


def _read_hub_field(accessors: HubAccessors, prop: CanonicalProperty, record: Record) -> str | None:
    return accessors.fields[prop.hub_field](record)


def observe_hub(record: Record) -> Reading:
    """Read every canonical property of a hub record."""
    accessors = hub().accessors
    props: Props = {
        name: _read_hub_field(accessors, prop, record) for name, prop in PROPERTIES.items()
    }
    return Reading(
        props=props,
        raw={prop.hub_field: props[name] for name, prop in PROPERTIES.items()},
        issues=_issues(props),
        has_other_items=accessors.has_other_items(record),
    )


def read_hub(record: Record) -> Props:
    """Canonical props of a hub record (display form)."""
    return observe_hub(record).props


def hub_revision(change_revision: int | None, record: Record) -> int | None:
    """The revision a change names, else the one the hub record carries (if any)."""
    if change_revision is not None:
        return change_revision
    return hub().accessors.revision(record)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def member_field_values(resource: str, props: Mapping[str, str | None]) -> dict[str, str | None]:
    """``{member field: value}`` for the props the flow maps (values as displayed/typed)."""
    flow = flow_for(resource)
    out: dict[str, str | None] = {}
    for name, value in props.items():
        pmap = flow.property_map(name)
        if pmap is not None:
            out[pmap.member_field] = clean(value)
    return out


def hub_write_values(props: Mapping[str, str | None]) -> dict[str, str | None]:
    """Canonical name -> value as the hub stores it (``HubAccessors.write_form``)."""
    write_form = hub().accessors.write_form
    return {
        name: write_form(PROPERTIES[name].kind, value)
        for name, value in props.items()
        if name in PROPERTIES
    }


# --------------------------------------------------------------------------------------------
# Match keys
# --------------------------------------------------------------------------------------------


def key_for(kind: KeyKind | str, value: object) -> MatchKey | None:
    """The match key of a value, or ``None`` when it cannot identify anyone (empty, invalid
    e-mail, unparseable phone)."""
    text = clean(value)
    if text is None:
        return None
    if kind == KeyKind.EMAIL:
        if not is_valid_email(text):
            return None
        normalized = normalize_email(text)
        return MatchKey(KeyKind.EMAIL.value, normalized) if normalized else None
    if kind == KeyKind.PHONE:
        e164 = phone_e164(text)
        return MatchKey(KeyKind.PHONE.value, e164) if e164 else None
    return None


def match_keys(flow: FlowSpec, record: Record) -> list[MatchKey]:
    """The keys to look a member record up by (first rule that yields a key wins).

    Takes the raw record because match fields need not be synced (employees match on their
    ``EmailAddress``, which flow A does not sync)."""
    for rule in flow.match_rules:
        key = key_for(rule.key_kind, record.get(rule.member_field))
        if key is not None:
            return [key]
    return []


def hub_match_keys(record: Record) -> list[MatchKey]:
    """Index keys of a hub record: every identifying value it holds (``identifiers``: e.g. every
    e-mail and phone item, not only the primary ones), then those of its mapped properties."""
    accessors = hub().accessors
    keys: list[MatchKey] = []
    for kind, value in accessors.identifiers(record):
        key = key_for(kind, value)
        if key is not None and key not in keys:
            keys.append(key)
    for prop in PROPERTIES.values():
        if prop.key_kind is None:
            continue
        key = key_for(prop.key_kind, _read_hub_field(accessors, prop, record))
        if key is not None and key not in keys:
            keys.append(key)
    return keys


def props_key(name: str, value: str | None) -> MatchKey | None:
    """The match key a canonical property value yields, if the property identifies records."""
    prop = PROPERTIES.get(name)
    if prop is None or prop.key_kind is None:
        return None
    return key_for(prop.key_kind, value)


def props_match_keys(props: Mapping[str, str | None]) -> list[MatchKey]:
    """Keys of canonical props (used for links whose hub record is still being created)."""
    keys: list[MatchKey] = []
    for name, value in props.items():
        key = props_key(name, value)
        if key is not None and key not in keys:
            keys.append(key)
    return keys

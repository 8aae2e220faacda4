"""Declarative property mappings: one ``FlowSpec`` per PowerOffice resource, read/write helpers.

The spec's tables (``spec/dataflows.md``) become data here:

* a ``CanonicalProperty`` names a synced property (``first_name``, ``last_name``, ``email``,
  ``phone``), its ``ValueKind`` and how it is read from a Wix contact (the primary item for e-mail
  and phone);
* a ``PropertyMap`` ties a canonical property to the PowerOffice field of one flow, optionally
  only for some records (``applies``: a company customer has no person name to sync);
* a ``FlowSpec`` lists a flow's property maps, its match rules (which keys find an existing Wix
  contact), when a record counts as archived/inactive, and the fixed fields of a create.

Adding a property or a flow is configuration: a new ``CanonicalProperty``, ``PropertyMap`` or
``FlowSpec`` registered in ``PROPERTIES``/``FLOWS`` plus tests; the decision code never names a
field.

Reading Wix primary items: the item flagged ``primary: true`` (an absent flag is ``false``). When
no item is flagged and the contact carries ``primaryInfo`` (Wix's read-only mirror of the primary
items), the item equal to ``primaryInfo.email``/``primaryInfo.phone`` (or that value itself), and
no value when the mirror has none. Only when ``primaryInfo`` is missing altogether (a partial
projection) is the first item taken — Wix makes the first item primary when none is flagged.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, TypeAlias

from services.core.errors import ContractError
from services.core.wix_items import contact_items
from services.core.wix_items import primary_item as wix_primary_item
from services.mapper.domain.identity import CONTACT_PERSONS, CUSTOMERS, EMPLOYEES
from services.mapper.domain.normalize import (
    IssueCode,
    ValueKind,
    check,
    clean,
    for_wix,
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
# Wix accessors
# --------------------------------------------------------------------------------------------


def unwrap_contact(contact: Record) -> Record:
    """Accept both a bare contact and the API's ``{"contact": {...}}`` envelope."""
    inner = contact.get("contact")
    if isinstance(inner, Mapping) and "id" not in contact:
        return inner
    return contact


def _items(contact: Record, collection: str) -> list[Record]:
    return contact_items(contact, collection)


def primary_item(contact: Record, collection: str, value_field: str) -> Record | None:
    """The primary item of ``info.<collection>.items`` (see the module docstring for the rule)."""
    return wix_primary_item(unwrap_contact(contact), collection, value_field)


def _wix_phone_value(item: Record | None) -> str | None:
    if item is None:
        return None
    e164 = clean(item.get("e164Phone"))
    if e164 is not None:
        return e164
    raw = clean(item.get("phone"))
    region = clean(item.get("countryCode"))
    if raw is not None and region is not None:
        return phone_e164(raw, region.upper()) or raw
    return raw


def _read_wix_first(contact: Record) -> str | None:
    info = unwrap_contact(contact).get("info")
    name = info.get("name") if isinstance(info, Mapping) else None
    return clean(name.get("first")) if isinstance(name, Mapping) else None


def _read_wix_last(contact: Record) -> str | None:
    info = unwrap_contact(contact).get("info")
    name = info.get("name") if isinstance(info, Mapping) else None
    return clean(name.get("last")) if isinstance(name, Mapping) else None


def _read_wix_email(contact: Record) -> str | None:
    item = primary_item(contact, "emails", "email")
    return clean(item.get("email")) if item is not None else None


def _read_wix_phone(contact: Record) -> str | None:
    return _wix_phone_value(primary_item(contact, "phones", "phone"))


@dataclass(frozen=True)
class CanonicalProperty:
    """A synced property: its canonical name, value kind and Wix accessor."""

    name: str
    kind: ValueKind
    wix_path: str
    read_wix: Callable[[Record], str | None]
    key_kind: KeyKind | None = None
    """The match-key kind its values produce, if it can identify a contact."""


FIRST_NAME = CanonicalProperty("first_name", ValueKind.NAME, "info.name.first", _read_wix_first)
LAST_NAME = CanonicalProperty("last_name", ValueKind.NAME, "info.name.last", _read_wix_last)
EMAIL = CanonicalProperty(
    "email", ValueKind.EMAIL, "info.emails[primary].email", _read_wix_email, KeyKind.EMAIL
)
PHONE = CanonicalProperty(
    "phone", ValueKind.PHONE, "info.phones[primary].phone", _read_wix_phone, KeyKind.PHONE
)

PROPERTIES: dict[str, CanonicalProperty] = {
    p.name: p for p in (FIRST_NAME, LAST_NAME, EMAIL, PHONE)
}
"""Every canonical property; a Wix contact carries all of them (``use_dataflow`` may replace
them with a dataflow file's declarations, which can only use the ``WIX_READERS`` below)."""

WIX_READERS: dict[str, tuple[str, Callable[[Record], str | None]]] = {
    p.wix_path: (p.name, p.read_wix) for p in (FIRST_NAME, LAST_NAME, EMAIL, PHONE)
}
"""Wix field path -> (the canonical name the loader and the Wix client write it under, reader).
A dataflow file can map only these paths until the field accessors move into the connector
packages (issue 15)."""

CONTACT_DATA_PROPERTIES: tuple[str, ...] = ("first_name", "last_name", "email", "phone")
"""A Wix contact must keep at least one of these (or another email/phone item)."""


def kind_of(name: str) -> ValueKind:
    """The value kind of a canonical property."""
    return PROPERTIES[name].kind


# --------------------------------------------------------------------------------------------
# PowerOffice flows
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
_is_person = FieldIs("IsPerson", True)
_archived = FieldIs("IsArchived", True)
_contact_person_inactive = FieldIs("IsActive", False)


@dataclass(frozen=True)
class PropertyMap:
    """One row of a spec table: canonical property <-> PowerOffice field (PascalCase)."""

    prop: CanonicalProperty
    poweroffice_field: str
    applies: Callable[[Record], bool] = ALWAYS
    """Whether a given record carries this property (evaluated on every observation)."""

    @property
    def name(self) -> str:
        return self.prop.name


@dataclass(frozen=True)
class MatchRule:
    """Match on the normalized value of a PowerOffice field (synced or not)."""

    key_kind: KeyKind
    poweroffice_field: str


@dataclass(frozen=True)
class FlowSpec:
    """Everything the mapper knows about one PowerOffice resource."""

    name: str
    """The PowerOffice resource (``employees``, ``contact_persons``, ``customers``)."""
    label: str
    """The spec's flow letter."""
    properties: tuple[PropertyMap, ...]
    match_rules: tuple[MatchRule, ...]
    """Tried in order; the FIRST rule that yields a valid key is used (employees: e-mail, else
    phone). A record whose rules yield no key matches nothing."""
    is_inactive: Callable[[Record], bool]
    """Archived/inactive records are unlinked, never created."""
    create_fields: Mapping[str, JsonScalar] = field(default_factory=dict)
    """Fixed fields of a PowerOffice create (e.g. ``IsPerson: true`` for a private customer)."""
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


FLOW_A_EMPLOYEES = FlowSpec(
    name=EMPLOYEES,
    label="A",
    properties=(
        PropertyMap(FIRST_NAME, "FirstName"),
        PropertyMap(LAST_NAME, "LastName"),
        PropertyMap(PHONE, "PhoneNumber"),
    ),
    match_rules=(
        MatchRule(KeyKind.EMAIL, "EmailAddress"),
        MatchRule(KeyKind.PHONE, "PhoneNumber"),
    ),
    is_inactive=_archived,
)

FLOW_B_CONTACT_PERSONS = FlowSpec(
    name=CONTACT_PERSONS,
    label="B",
    properties=(
        PropertyMap(EMAIL, "EmailAddress"),
        PropertyMap(FIRST_NAME, "FirstName"),
        PropertyMap(LAST_NAME, "LastName"),
    ),
    match_rules=(MatchRule(KeyKind.EMAIL, "EmailAddress"),),
    is_inactive=_contact_person_inactive,
    parent_field="ContactId",
)

FLOW_C_CUSTOMERS = FlowSpec(
    name=CUSTOMERS,
    label="C",
    properties=(
        PropertyMap(EMAIL, "EmailAddress"),
        # A company customer (IsPerson false/absent) carries its name in `Name`, and its
        # FirstName/LastName are normally empty: names are synced for person customers only.
        PropertyMap(FIRST_NAME, "FirstName", applies=_is_person),
        PropertyMap(LAST_NAME, "LastName", applies=_is_person),
    ),
    match_rules=(MatchRule(KeyKind.EMAIL, "EmailAddress"),),
    is_inactive=_archived,
    create_fields={"IsPerson": True},
)

FLOWS: dict[str, FlowSpec] = {
    f.name: f for f in (FLOW_A_EMPLOYEES, FLOW_B_CONTACT_PERSONS, FLOW_C_CUSTOMERS)
}
"""Flow registry, keyed by PowerOffice resource (the built-in default; ``use_dataflow`` replaces
it with a dataflow file's flows at start-up)."""


def use_dataflow(
    flows: Mapping[str, FlowSpec], properties: Mapping[str, CanonicalProperty]
) -> None:
    """Make ``flows``/``properties`` (built from a validated dataflow file, see ``dataflow``)
    the registries every function of the domain reads. Called once, at process start, before
    any change is handled: the registries are replaced in place so that every module holding a
    reference to ``FLOWS``/``PROPERTIES`` sees the new content."""
    FLOWS.clear()
    FLOWS.update(flows)
    PROPERTIES.clear()
    PROPERTIES.update(properties)


def flow_for(resource: str) -> FlowSpec:
    """The flow of a PowerOffice resource; ``ContractError`` for a resource with no flow."""
    try:
        return FLOWS[resource]
    except KeyError:
        raise ContractError(f"no mapping flow for poweroffice resource {resource!r}") from None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What one side says about the synced properties of one record."""

    props: Props
    raw: dict[str, JsonScalar]
    """PowerOffice: field -> value exactly as read (JSON Patch ``test`` guards need it)."""
    issues: tuple[Issue, ...] = ()
    has_other_items: bool = False
    """Wix: the contact has email/phone items besides the primary ones."""


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


def observe_poweroffice(resource: str, record: Record) -> Reading:
    """Read the mapped properties (those that apply to this record) of a PowerOffice record."""
    flow = flow_for(resource)
    props: Props = {}
    raw: dict[str, JsonScalar] = {}
    for pmap in flow.properties:
        if not pmap.applies(record):
            continue
        value = record.get(pmap.poweroffice_field)
        props[pmap.name] = clean(value)
        raw[pmap.poweroffice_field] = _raw(value)
    return Reading(props=props, raw=raw, issues=_issues(props))


def read_poweroffice(resource: str, record: Record) -> Props:
    """Canonical props of a PowerOffice record (display form)."""
    return observe_poweroffice(resource, record).props


def observe_wix(contact: Record) -> Reading:
    """Read every canonical property of a Wix contact (primary email/phone items)."""
    contact = unwrap_contact(contact)
    props: Props = {name: prop.read_wix(contact) for name, prop in PROPERTIES.items()}
    items = len(_items(contact, "emails")) + len(_items(contact, "phones"))
    primaries = sum(
        1
        for collection, value_field in (("emails", "email"), ("phones", "phone"))
        if primary_item(contact, collection, value_field) is not None
        and _items(contact, collection)
    )
    return Reading(
        props=props,
        raw={prop.wix_path: props[name] for name, prop in PROPERTIES.items()},
        issues=_issues(props),
        has_other_items=items > primaries,
    )


def read_wix(contact: Record) -> Props:
    """Canonical props of a Wix contact (display form; phones in E.164 when parseable)."""
    return observe_wix(contact).props


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def poweroffice_patch_values(
    resource: str, props: Mapping[str, str | None]
) -> dict[str, str | None]:
    """``{PascalField: value}`` for the props the flow maps (values as displayed/typed)."""
    flow = flow_for(resource)
    out: dict[str, str | None] = {}
    for name, value in props.items():
        pmap = flow.property_map(name)
        if pmap is not None:
            out[pmap.poweroffice_field] = clean(value)
    return out


def wix_info_values(props: Mapping[str, str | None]) -> dict[str, str | None]:
    """Canonical name -> value as written to Wix (phones in E.164 when parseable).

    The Wix client turns these into ``info.name`` and the PRIMARY email/phone item, keeping every
    other item of the contact (``None`` removes the primary item's value)."""
    return {
        name: for_wix(PROPERTIES[name].kind, value)
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
    """The keys to look a PowerOffice record up by (first rule that yields a key wins).

    Takes the raw record because match fields need not be synced (employees match on their
    ``EmailAddress``, which flow A does not sync)."""
    for rule in flow.match_rules:
        key = key_for(rule.key_kind, record.get(rule.poweroffice_field))
        if key is not None:
            return [key]
    return []


def wix_match_keys(contact: Record) -> list[MatchKey]:
    """Index keys of a Wix contact: every email item and every phone item (not only primary)."""
    contact = unwrap_contact(contact)
    keys: list[MatchKey] = []
    for item in _items(contact, "emails"):
        key = key_for(KeyKind.EMAIL, item.get("email"))
        if key is not None and key not in keys:
            keys.append(key)
    for item in _items(contact, "phones"):
        key = key_for(KeyKind.PHONE, _wix_phone_value(item))
        if key is not None and key not in keys:
            keys.append(key)
    for name in ("email", "phone"):
        key = props_key(name, PROPERTIES[name].read_wix(contact))
        if key is not None and key not in keys:
            keys.append(key)
    return keys


def props_key(name: str, value: str | None) -> MatchKey | None:
    """The match key a canonical property value yields, if the property identifies contacts."""
    prop = PROPERTIES.get(name)
    if prop is None or prop.key_kind is None:
        return None
    return key_for(prop.key_kind, value)


def props_match_keys(props: Mapping[str, str | None]) -> list[MatchKey]:
    """Keys of canonical props (used for links whose Wix contact is still being created)."""
    keys: list[MatchKey] = []
    for name, value in props.items():
        key = props_key(name, value)
        if key is not None and key not in keys:
            keys.append(key)
    return keys

"""Simulator only: Wix API Query Language for contacts — filters, sort, paging, field projection.

What it is for: ``simstore`` compiles the ``filter`` / ``sort`` / ``paging`` / ``fields`` of List
and Query Contacts with these functions (reference §3.5-3.6, §8) and raises ``SimApiError`` (400
with the documented application code) for what Wix rejects. Production code must not import this
module.

Supported: ``$eq $ne $in $nin $exists $startsWith`` (``$begins`` accepted as a synonym),
``$gt $gte $lt $lte``, ``$hasSome $hasAll``, logical ``$and $or $not``; bare values mean ``$eq``.
E-mail fields compare case-insensitively; ``$startsWith`` is case-insensitive (AQL). Multi-valued
fields (``info.emails.email``…) match when any value matches (``$ne``: when none does).

Imports: standard library and ``simstore``'s error type only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from services.connectors.wix.simerrors import SimApiError, app_error, invalid

Contact = dict[str, Any]
Predicate = Callable[[Contact], bool]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50

_EQ = frozenset({"$eq", "$ne", "$in", "$exists"})
_STR = _EQ | {"$startsWith", "$begins"}
_CMP = frozenset({"$eq", "$ne", "$gt", "$lt", "$gte", "$lte"})
_ARR = frozenset({"$hasSome", "$hasAll"})
_EXT = _STR | _CMP | {"$nin"}

# field -> (operators allowed, value kind, sortable)
_FIELDS: dict[str, tuple[frozenset[str], str, bool]] = {
    "id": (_EQ, "str", False),
    "createdDate": (_CMP, "date", True),
    "updatedDate": (_CMP, "date", False),
    "lastActivity.activityDate": (_CMP, "date", True),
    "primaryInfo.email": (_STR, "email", True),
    "primaryInfo.phone": (_STR, "str", False),
    "info.name.first": (_STR, "str", True),
    "info.name.last": (_STR, "str", True),
    "info.company": (_STR, "str", True),
    "info.jobTitle": (_STR, "str", True),
    "info.emails.email": (_STR, "email", False),
    "info.phones.phone": (_STR, "str", False),
    "info.phones.e164Phone": (_STR, "str", False),
    "info.addresses.street": (_STR, "str", False),
    "info.addresses.city": (_STR, "str", False),
    "info.addresses.subdivision": (_EQ, "str", False),
    "info.addresses.country": (_EQ, "str", False),
    "info.locale": (_EQ, "str", False),
    "info.birthdate": (_CMP, "str", True),
    "info.labelKeys": (_ARR, "str", False),
    "info.locations": (_ARR, "str", False),
}
EXTENDED_PREFIXES = ("info.extendedFields.items.", "info.extendedFields.")

# fieldsets and the projectable fields (reference §3.2)
FIELDSETS: dict[str, tuple[str, ...]] = {
    "BASIC": ("primaryInfo", "info.name"),
    "COMMUNICATION_DETAILS": (
        "primaryInfo",
        "info.name",
        "info.emails",
        "info.phones",
        "info.addresses",
    ),
    "EXTENDED": ("primaryInfo", "info.name", "info.extendedFields"),
}
PROJECTABLE = frozenset(
    {
        "source",
        "createdDate",
        "updatedDate",
        "lastActivity",
        "primaryInfo",
        "info.name",
        "info.emails",
        "info.phones",
        "info.addresses",
        "info.company",
        "info.jobTitle",
        "info.picture",
        "info.birthdate",
        "info.locale",
        "info.labelKeys",
        "info.locations",
        "info.extendedFields",
    }
)


def parse_time(value: object) -> datetime:
    """An ISO-8601 filter value (plain string or ``{"$date": …}``) as an aware datetime."""
    if isinstance(value, dict) and "$date" in value:
        value = value["$date"]
    if not isinstance(value, str):
        raise _bad_value("expected an ISO-8601 date-time string")
    parsed = _parse_iso(value)
    if parsed is None:
        raise _bad_value("not an ISO-8601 date-time")
    return parsed


@lru_cache(maxsize=1 << 15)
def _parse_iso(value: str) -> datetime | None:
    """``value`` as an aware datetime, None when it is not ISO-8601. Cached: every query compares
    and sorts by the stored contacts' ``createdDate`` / ``updatedDate`` strings, the same ones
    query after query (datetimes are immutable, so sharing a result is safe)."""
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bad_value(description: str) -> SimApiError:
    return app_error(400, "UNSUPPORTED_FILTER_VALUE", "Unsupported filter value", description)


def field_values(contact: Contact, field: str) -> list[Any]:
    """All values of ``field`` in ``contact`` (several for item collections)."""
    info = contact.get("info", {})
    for prefix in EXTENDED_PREFIXES:
        if field.startswith(prefix):
            items = info.get("extendedFields", {}).get("items", {})
            key = field[len(prefix) :]
            return [items[key]] if key in items else []
    if field in ("info.emails.email",):
        return [i.get("email") for i in info.get("emails", {}).get("items", [])]
    if field.startswith("info.phones."):
        name = field.split(".", 2)[2]
        return [i.get(name) for i in info.get("phones", {}).get("items", []) if i.get(name)]
    if field.startswith("info.addresses."):
        name = field.split(".", 2)[2]
        return [
            i.get("address", {}).get(name)
            for i in info.get("addresses", {}).get("items", [])
            if i.get("address", {}).get(name) is not None
        ]
    if field in ("info.labelKeys", "info.locations"):
        return list(info.get(field.split(".")[1], {}).get("items", []))
    node: Any = contact
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    return [] if node is None else [node]


def _field_spec(field: str) -> tuple[frozenset[str], str, bool]:
    if field in _FIELDS:
        return _FIELDS[field]
    for prefix in EXTENDED_PREFIXES:
        if field.startswith(prefix) and len(field) > len(prefix):
            return _EXT, "ext", field[len(prefix) :].startswith("custom.")
    raise app_error(
        400,
        "UNSUPPORTED_FILTER_FIELD_UNKNOWN",
        "Unsupported filter field",
        f"field {field!r} cannot be filtered",
        {"fieldName": field},
    )


def compile_filter(spec: object) -> Predicate:
    """Compile an AQL filter object; an empty or missing filter matches everything."""
    if spec is None:
        return lambda _c: True
    if not isinstance(spec, dict):
        raise app_error(400, "MALFORMED_FILTER", "Malformed filter", "filter must be an object")
    parts: list[Predicate] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise app_error(400, "MALFORMED_FILTER", "Malformed filter", f"{key} needs a list")
            subs = [compile_filter(v) for v in value]
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key == "$not":
            parts.append(_negate(compile_filter(value)))
        elif key.startswith("$"):
            raise app_error(
                400,
                "UNSUPPORTED_FILTER_OPERATOR",
                "Unsupported filter operator",
                f"{key} is not a logical operator",
            )
        else:
            parts.append(_compile_field(key, value))
    return _all(parts)


def _negate(pred: Predicate) -> Predicate:
    return lambda c: not pred(c)


def _all(preds: Sequence[Predicate]) -> Predicate:
    return lambda c: all(p(c) for p in preds)


def _any(preds: Sequence[Predicate]) -> Predicate:
    return lambda c: any(p(c) for p in preds)


def _compile_field(field: str, value: object) -> Predicate:
    allowed, kind, _sortable = _field_spec(field)
    if isinstance(value, dict) and value and all(str(k).startswith("$") for k in value):
        ops = dict(value)
    else:
        ops = {"$eq": value}
    preds: list[Predicate] = []
    for op, operand in ops.items():
        if op not in allowed:
            raise app_error(
                400,
                "UNSUPPORTED_FILTER_OPERATOR",
                "Unsupported filter operator",
                f"{op} is not supported on {field}",
                {"fieldName": field, "operator": op},
            )
        preds.append(_compile_op(field, kind, op, operand))
    return _all(preds)


def _norm(kind: str, value: Any) -> Any:
    if kind == "email" and isinstance(value, str):
        return value.strip().lower()
    if kind == "date" and value is not None:
        return parse_time(value)
    return value


def _compile_op(field: str, kind: str, op: str, operand: object) -> Predicate:
    def values(c: Contact) -> list[Any]:
        return [_norm(kind, v) for v in field_values(c, field)]

    if op == "$exists":
        if not isinstance(operand, bool):
            raise _bad_value("$exists takes a boolean")
        return lambda c: bool(field_values(c, field)) == operand
    if op in ("$in", "$nin", "$hasSome", "$hasAll"):
        if not isinstance(operand, list):
            raise app_error(
                400,
                "UNSUPPORTED_FILTER_VALUE_TYPE",
                "Unsupported filter value type",
                f"{op} takes a list",
            )
        wanted = [_norm(kind, v) for v in operand]
        if op == "$in" or op == "$hasSome":
            return lambda c: any(v in wanted for v in values(c))
        if op == "$nin":
            return lambda c: not any(v in wanted for v in values(c))
        return lambda c: all(w in values(c) for w in wanted)
    if op in ("$startsWith", "$begins"):
        if not isinstance(operand, str):
            raise _bad_value(f"{op} takes a string")
        prefix = operand.lower()
        return lambda c: any(
            isinstance(v, str) and v.lower().startswith(prefix) for v in field_values(c, field)
        )
    target = _norm(kind, operand)
    if op == "$eq":
        return lambda c: target in values(c)
    if op == "$ne":
        return lambda c: target not in values(c)
    compare: Callable[[Any, Any], bool] = {
        "$gt": lambda a, b: a > b,
        "$gte": lambda a, b: a >= b,
        "$lt": lambda a, b: a < b,
        "$lte": lambda a, b: a <= b,
    }[op]

    def ordered(c: Contact) -> bool:
        for v in values(c):
            try:
                if compare(v, target):
                    return True
            except TypeError:
                continue
        return False

    return ordered


@dataclass(frozen=True)
class SortSpec:
    field: str
    descending: bool


def parse_sort(spec: object) -> SortSpec:
    """``[{"fieldName", "order"}]`` (max 1) or the older single object; default createdDate ASC."""
    if spec is None or spec == []:
        return SortSpec("createdDate", False)
    if isinstance(spec, dict):
        spec = [spec]
    if not isinstance(spec, list) or len(spec) > 1 or not isinstance(spec[0], dict):
        raise invalid("sort must hold at most one {fieldName, order}", "query.sort", "MAX_SIZE")
    field = spec[0].get("fieldName")
    order = str(spec[0].get("order", "ASC")).upper()
    if order not in ("ASC", "DESC"):
        raise invalid("order must be ASC or DESC", "query.sort.order", "ENUM")
    if not isinstance(field, str):
        raise invalid("fieldName is required", "query.sort.fieldName", "REQUIRED_FIELD")
    try:
        sortable = _field_spec(field)[2]
    except SimApiError:
        sortable = False
    if not sortable:
        raise app_error(
            400,
            "UNSUPPORTED_SORT_FIELD",
            "Unsupported sort field",
            f"sorting by {field!r} is not supported",
            {"fieldName": field},
        )
    return SortSpec(field, order == "DESC")


def sort_contacts(contacts: Iterable[tuple[int, Contact]], sort: SortSpec) -> list[Contact]:
    """Sort ``(insertion sequence, contact)`` pairs: sequence breaks ties, missing values last."""
    kind = _FIELDS.get(sort.field, (_EQ, "ext", True))[1]
    present: list[tuple[Any, int, Contact]] = []
    missing: list[tuple[int, Contact]] = []
    for seq, contact in contacts:
        vals = field_values(contact, sort.field)
        if vals:
            present.append((_norm(kind, vals[0]), seq, contact))
        else:
            missing.append((seq, contact))
    try:
        present.sort(key=lambda t: (t[0], t[1]), reverse=sort.descending)
    except TypeError:  # mixed value types in a custom field: compare as text
        present.sort(key=lambda t: (str(t[0]), t[1]), reverse=sort.descending)
    missing.sort(key=lambda t: t[0])
    return [c for _v, _s, c in present] + [c for _s, c in missing]


def parse_paging(limit: object, offset: object, where: str = "paging") -> tuple[int, int]:
    """Validate ``paging.limit`` (1..1000, default 50) and ``paging.offset`` (>= 0)."""
    lim = DEFAULT_LIMIT if limit is None else _as_int(limit, f"{where}.limit")
    off = 0 if offset is None else _as_int(offset, f"{where}.offset")
    if lim < 1 or lim > MAX_LIMIT:
        raise app_error(
            400,
            "ILLEGAL_LIMIT",
            "Illegal limit",
            f"paging.limit must be between 1 and {MAX_LIMIT}",
            {"limit": lim},
        )
    if off < 0:
        raise invalid("paging.offset must not be negative", f"{where}.offset", "MIN")
    return lim, off


def _as_int(value: object, field: str) -> int:
    if isinstance(value, bool):
        raise invalid("expected an integer", field, "TYPE")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise invalid("expected an integer", field, "TYPE")


def parse_projection(fields: object, fieldsets: object) -> frozenset[str] | None:
    """The projected paths, or None for FULL (the default when neither is given)."""
    field_list = _as_str_list(fields, "fields")
    set_list = _as_str_list(fieldsets, "fieldsets")
    if len(field_list) > 100:
        raise invalid("at most 100 fields", "fields", "MAX_SIZE")
    if len(set_list) > 10:
        raise invalid("at most 10 fieldsets", "fieldsets", "MAX_SIZE")
    if not field_list and not set_list:
        return None
    paths: set[str] = set()
    for name in set_list:
        if name == "FULL":
            return None
        if name not in FIELDSETS:
            raise invalid(f"unknown fieldset {name!r}", "fieldsets", "ENUM")
        paths.update(FIELDSETS[name])
    for name in field_list:
        if name not in PROJECTABLE:
            raise invalid(f"field {name!r} cannot be projected", "fields", "ENUM")
        paths.add(name)
    return frozenset(paths)


def _as_str_list(value: object, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid("expected a list of strings", field, "TYPE")
    out: list[str] = []
    for v in value:  # GET query params may be comma-separated
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def project(contact: Contact, paths: frozenset[str] | None) -> Contact:
    """``contact`` restricted to ``paths`` (``id`` and ``revision`` always kept): a new top-level
    dict (and ``info``) whose values are shared with ``contact``, not copied — the store never
    mutates a committed contact (``simstore``: copy-on-write), and callers only serialize it."""
    if paths is None:
        return dict(contact)
    out: Contact = {"id": contact["id"], "revision": contact["revision"]}
    for path in paths:
        if path == "primaryInfo":
            for key in ("primaryInfo", "primaryEmail", "primaryPhone"):
                if key in contact:
                    out[key] = contact[key]
        elif path.startswith("info."):
            name = path[5:]
            if name in contact.get("info", {}):
                out.setdefault("info", {})[name] = contact["info"][name]
        elif path in contact:
            out[path] = contact[path]
    return out

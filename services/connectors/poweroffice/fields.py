"""PowerOffice Go's field accessors: one table per resource, keyed by top-level JSON names.

A PowerOffice record is flat JSON with PascalCase names, so a field's path is its name
(``FirstName``, ``EmailAddress``, ``IsPerson``) and a ``PowerOfficeField`` (a
``services.core.connector.FieldAccessor``) is simple:

- **read** — ``record.get(name)``;
- **value** — a command's text (the Avro map's string) as the property's JSON type: the model's
  non-string scalars (``bool``: ``true/1/yes`` / ``false/0/no``; ``int``; ``float``) are
  converted, everything else stays the string it is (``ContractError`` when it does not convert);
- **holds** — exact equality of JSON values, as the API compares a JSON Patch ``test`` (kind
  ``exact``);
- **write** — the record's own shape: ``{name: value}`` is both a create body and a ``replace``.

The tables (``fields_of(resource)``) list the model's properties; the API keeps properties the
model does not know (``extra="allow"``), so any other top-level name is a string field too.

Pure: the standard library, pydantic models and ``services.core.errors``; no I/O.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from services.connectors.poweroffice.models import RESOURCE_SPECS
from services.core.errors import ContractError

__all__ = ["PowerOfficeField", "PowerOfficeFields", "fields_of", "scalar_types"]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def scalar_types(model: type[BaseModel]) -> dict[str, type]:
    """PascalCase property -> ``bool``/``int``/``float`` for the model's non-string scalars."""
    hints = typing.get_type_hints(model)
    out: dict[str, type] = {}
    for name, info in model.model_fields.items():
        annotation = hints.get(name, info.annotation)
        args = set(typing.get_args(annotation)) if _is_union(annotation) else {annotation}
        args.discard(type(None))
        for kind in (bool, int, float):
            if args == {kind}:
                out[info.alias or name] = kind
    return out


@dataclass(frozen=True)
class PowerOfficeField:
    """One top-level property; ``json_type`` is ``bool``/``int``/``float``, or ``None``: text."""

    path: str
    json_type: type | None = None
    kind: str = "exact"

    def read(self, record: Mapping[str, Any]) -> Any:
        return record.get(self.path)

    def value(self, text: str | None) -> Any:
        if text is None:
            return None
        kind = self.json_type
        try:
            if kind is bool:
                lowered = text.strip().lower()
                if lowered in _TRUE:
                    return True
                if lowered in _FALSE:
                    return False
                raise ValueError("not a boolean")
            if kind is int:
                return int(text.strip())
            if kind is float:
                return float(text.strip())
        except ValueError:
            raise ContractError(
                f"value of {self.path} is not a valid {kind.__name__ if kind else 'value'}"
            ) from None
        return text

    def holds(self, record: Mapping[str, Any], value: Any) -> bool:
        return bool(record.get(self.path) == value)


class PowerOfficeFields(Mapping[str, PowerOfficeField]):
    """A resource's accessor table: the model's properties, typed; any other name is text."""

    def __init__(self, model: type[BaseModel]) -> None:
        typed = scalar_types(model)
        names = [info.alias or name for name, info in model.model_fields.items()]
        self._known = {path: PowerOfficeField(path, typed.get(path)) for path in names}

    def __getitem__(self, path: str) -> PowerOfficeField:
        known = self._known.get(path)
        return known if known is not None else PowerOfficeField(path)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str)

    def __iter__(self) -> Iterator[str]:
        return iter(self._known)

    def __len__(self) -> int:
        return len(self._known)


_TABLES: Final[dict[str, PowerOfficeFields]] = {
    spec.name: PowerOfficeFields(spec.model) for spec in RESOURCE_SPECS
}


def fields_of(resource: str) -> PowerOfficeFields:
    """The accessor table of an engine resource (``employees``, ``customers``,
    ``contact_persons``)."""
    return _TABLES[resource]

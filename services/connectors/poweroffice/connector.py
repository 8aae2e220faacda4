"""PowerOffice Go v2 behind the connector interface (``services.core.connector``).

Adapters only: every request, retry, renewal and guard is ``PowerOfficeClient``'s, unchanged.

* ``PowerOfficeStream`` (``stream.py``): keyset paging on ``LastChangedDateTimeOffset`` with an
  overlap window and the identities it re-reads in its cursor; ``scan``: ``Id``/
  ``LastChangedDateTimeOffset`` (and ``ContactId``) of every record, by ``Id``. Contact persons
  carry a ``ParentRole``: their parent is a customer (``/Customers/{id}`` answers) or else a
  supplier.
* ``PowerOfficeTarget``: ``create`` with the resource's reference field (``ExternalImportReference``
  or ``ExternalCode``: the client looks it up before and after the POST); ``update`` is a JSON
  Patch with ``test`` operations from ``Guard.expected`` (the guard is the written fields' values
  as read; a refusal the client explains by a read holding the changes -> ``applied`` false,
  else ``GuardRefusedError`` with that read); ``delete`` by id. A malformed id or parent id of a
  write is a ``ContractError``. Fields: ``fields.fields_of(resource)`` (top-level JSON names).

Resources keep the engine's names (``contact_persons``); ``models.RESOURCE_SPECS`` is the one
table of them (the API's name, model, reference field, Avro record type) the descriptor is made
from; ``API_RESOURCE`` maps them to the API's names.

Imports: the PowerOffice client, models and field tables, ``services.core`` — never the simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry

from services.connectors.poweroffice.client import (
    GuardFailedError,
    PowerOfficeClient,
    RetryPolicy,
    require_credentials,
)
from services.connectors.poweroffice.fields import fields_of
from services.connectors.poweroffice.models import (
    RESOURCE_SPECS,
    ContactPerson,
    Customer,
    Employee,
    parse_record,
)
from services.connectors.poweroffice.stream import API_RESOURCE, STAMP, SYSTEM, PowerOfficeStream
from services.core.budget import ApiBudget
from services.core.connector import (
    ConnectorDescriptor,
    Guard,
    GuardRefusedError,
    ParentRole,
    RateLimit,
    RecordKey,
    ResourceDescriptor,
    SourceStream,
    StreamOptions,
    Target,
    Written,
)
from services.core.errors import ContractError, NotFoundError
from services.core.settings import PowerOfficeSettings

PoRecord = Employee | Customer | ContactPerson
_SCHEMA: Final[dict[str, type[PoRecord]]] = {spec.name: spec.model for spec in RESOURCE_SPECS}
CONTACT_PERSON_PARENT: Final = ParentRole(
    resource="customers",
    found="customer",
    otherwise="supplier",
    created_field="CreatedDateTimeOffset",
)
"""``GET /ContactPersons`` lists customers' and suppliers' contact persons alike; customer and
supplier are roles of one contact, so a parent ``/Customers/{id}`` answers for is a customer.
(Suppliers have a resource of their own, but the reference documents neither its paths nor its
semantics, so only ``/Customers`` is asked.)"""


def _int_id(value: str, what: str) -> int:
    if not value.isdigit():
        raise NotFoundError(f"{SYSTEM}: {what} {value!r} is not a PowerOffice id", system=SYSTEM)
    return int(value)


def _command_id(value: str | None, what: str) -> int:
    """A record id the engine asks to write: numeric, else the command is malformed."""
    if value is None or not value.strip().isdigit():
        raise ContractError(f"{SYSTEM} {what} is not a numeric id")
    return int(value)


class PowerOfficeTarget:
    """``Target`` of one PowerOffice resource.

    ``update`` is a JSON Patch with a ``test`` per ``Guard.expected`` property. A refused guard
    (409, or a 400 the client traces to a failed ``test``) is never final: the client re-reads
    until a read explains it (reads may lag the writes) — the changes already there: the record,
    ``applied`` false; else ``GuardRefusedError`` carrying the record that read showed.
    """

    def __init__(self, client: PowerOfficeClient, resource: str) -> None:
        self.client = client
        self._resource = resource
        self.api_resource = API_RESOURCE[resource]
        self._records = client.resource(self.api_resource)
        # ``Any``: the client's record type variable is constrained, not a union.
        self._model: type[Any] = _SCHEMA[resource]

    @property
    def resource(self) -> str:
        return self._resource

    def _written(self, record: PoRecord, *, created: bool = False, applied: bool = True) -> Written:
        wire = record.to_wire()
        parent = wire.get("ContactId") if self.api_resource == "contactpersons" else None
        return Written(
            RecordKey(str(wire["Id"]), str(parent) if parent is not None else None),
            wire,
            created=created,
            applied=applied,
        )

    def _parent(self, parent_id: str | None) -> int:
        return _command_id(parent_id, "contact person parent (ContactId)")

    def _parent_of(self, key: RecordKey) -> int | None:
        return self._parent(key.parent_id) if self.api_resource == "contactpersons" else None

    def create(
        self,
        values: Mapping[str, Any],
        *,
        reference: str,
        parent_id: str | None = None,
        allow_duplicates: bool = False,
        made_after: datetime | None = None,
    ) -> Written:
        parent = self._parent(parent_id) if self.api_resource == "contactpersons" else None
        result = self._records.create(values, reference=reference, parent_id=parent)
        return self._written(result.record, created=result.created)

    def guard(self, record: Mapping[str, Any], fields: tuple[str, ...]) -> Guard:
        return Guard(expected={name: record.get(name) for name in fields})

    def read(self, key: RecordKey) -> Written:
        record_id = _command_id(key.id, "target_id")
        wire = self._records.get_wire(record_id, parent_id=self._parent_of(key))
        return self.written(wire)

    def written(self, record: Mapping[str, Any]) -> Written:
        return self._written(parse_record(self._model, record))

    def update(
        self,
        key: RecordKey,
        changes: Mapping[str, Any],
        *,
        guard: Guard,
        base: Mapping[str, Any] | None = None,
    ) -> Written:
        record_id = _command_id(key.id, "target_id")
        expected = dict(guard.expected) or None
        try:
            result = self._records.update(
                record_id, changes, expected=expected, parent_id=self._parent_of(key)
            )
        except GuardFailedError as exc:
            current = exc.current
            raise GuardRefusedError(
                str(exc),
                current=(
                    parse_record(self._model, current).to_wire() if current is not None else None
                ),
                system=SYSTEM,
                status=exc.status,
                error_code=exc.error_code,
                data=exc.data,
            ) from exc
        return self._written(result.record, applied=result.written)

    def delete(self, key: RecordKey) -> None:
        record_id = _command_id(key.id, "target_id")
        self._records.delete(record_id, parent_id=self._parent_of(key))


def make_client(settings: PowerOfficeSettings, budget: ApiBudget) -> PowerOfficeClient:
    """A production client from settings (every credential required)."""
    require_credentials(settings)
    return PowerOfficeClient(
        application_key=settings.poweroffice_app_key,
        client_key=settings.poweroffice_client_key,
        subscription_key=settings.poweroffice_subscription_key,
        budget=budget,
        base_url=settings.poweroffice_base_url,
        token_url=settings.poweroffice_token_url,
        retry=RetryPolicy(),
    )


def streams(client: PowerOfficeClient, options: StreamOptions) -> dict[str, SourceStream]:
    return {name: PowerOfficeStream(client, name, options) for name in API_RESOURCE}


def targets(
    client: PowerOfficeClient,
    settings: PowerOfficeSettings | None = None,
    registry: CollectorRegistry | None = None,
) -> dict[str, Target]:
    """One target per resource (no settings or metrics of their own)."""
    return {name: PowerOfficeTarget(client, name) for name in API_RESOURCE}


DESCRIPTOR: Final = ConnectorDescriptor[PowerOfficeSettings, PowerOfficeClient](
    system=SYSTEM,
    resources={
        spec.name: ResourceDescriptor(
            name=spec.name,
            record_schema=spec.model,
            key_field="Id",
            version_field=STAMP,
            reference_field=spec.reference_field,
            record_type=spec.record_type,
            api_name=spec.api if spec.api != spec.name else None,
            parent_field=spec.parent_field,
            fields=fields_of(spec.name),
            parent_role=CONTACT_PERSON_PARENT if spec.api == "contactpersons" else None,
        )
        for spec in RESOURCE_SPECS
    },
    settings_model=PowerOfficeSettings,
    rate_limit=RateLimit(requests=10, per_seconds=1.0),
    client_factory=make_client,
    streams=streams,
    targets=targets,
)
"""The PowerOffice Go v2 connector (10 requests/second per subscription key)."""

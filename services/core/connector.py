"""The connector interface: what the engine needs from one system, and nothing more.

A connector is one package, ``services/connectors/<system>/``, whose ``connector.py`` exports a
``ConnectorDescriptor``. The engine (extractor, mapper, loader) is meant to be generic over these
types; nothing outside the package should name the system (docs/connectors.md: what still does).

Three roles, each a ``typing.Protocol`` (structural: an adapter needs no base class)::

    ConnectorDescriptor   system name, resources (record schema, key/version/reference/parent
      |                   fields), settings model, client factory, documented rate limit
      +-- SourceStream    per resource: pages(cursor) -> Page..., get(key), scan()
      +-- Target          per resource: create(values, reference), update(key, changes, guard),
                          delete(key), guard(record, fields)

Deliberately simpler than the anchors it learned from. Kafka Connect splits Connector/Task/
Converter and configures through ``ConfigDef``; here settings are one pydantic model and the
records stay the API's own JSON objects (the Avro envelope is the engine's business). The
Airbyte CDK's ``Stream`` carries ``cursor_field`` + a mutable ``state`` and Meltano's
``RESTStream`` a ``replication_key``; here the cursor is one opaque string the connector makes
and parses, the caller stores it after it has handled a page. Debezium's SPI streams a log;
our sources are polled APIs, so a stream can only promise *at-least-once with overlap*:

* ``pages(cursor)`` yields every record changed at or after the position ``cursor`` denotes
  (``None``: every record), in pages of at most ``page_size``; each ``Page.cursor`` is where to
  resume once that page is handled. Resuming may return records again (the overlap) but never
  skips one; the caller de-duplicates on ``(key, version)``. ``Page.last`` says the source had
  nothing more when it was read; a short page is never taken as the end (servers clamp).
* Polling cannot see deletes: ``scan()`` lists every live record's key and version, and
  ``get(key)`` answers ``None`` for a record that is gone — verification and reconciliation use
  both.
* ``Target.create`` carries an idempotency ``reference`` kept with the record (PowerOffice:
  ``ExternalImportReference``/``ExternalCode``; Wix: an extended field): a repeated create with
  the same reference returns the existing record (``Written.created`` false), so a create whose
  outcome was lost can be resent.
* ``Target.create`` with ``allow_duplicates`` false lets a system with natural keys (Wix: the
  e-mail/phone duplicate rule) answer with the existing record it matched (``Written.matched``:
  not ours, the caller links it); ``made_after`` bounds the look-up of a system that cannot keep
  the reference (see the Wix connector).
* ``Target.update`` takes a ``Guard`` made by ``Target.guard`` from the record as the caller read
  it (or by the caller from what it computed against: ``Guard(version=...)`` /
  ``Guard(expected=...)``, as ``ResourceDescriptor.guarded_by`` says); when the record has
  changed since, the system refuses the write (``GuardRefusedError``, a ``ConflictError``,
  carrying the record as the refusal showed it when the system told): the caller re-reads
  (``Target.read``) and merges again. ``base`` is the record the write is computed against (a
  version-guarded system needs it to build the write; without it the target reads it). The
  connector decides what a guard is — a revision (Wix) or the expected current values of the
  written fields (PowerOffice's JSON Patch ``test``) — and it must be enforced by the system,
  not by a read-then-write race in the client.
* Errors are ``services.core.errors`` types (``NotFoundError``, ``ConflictError``,
  ``RateLimitedError``...); rate limits and token renewal are the client's job: a 429 or an
  expired token never reaches the caller as long as retries remain.

Extraction needs a little more than paging (``services/extractor`` is generic over it):
``observe`` reads a record's identity, version and change time (``ContractError``: a dead
letter); ``version_order``/``canonical_version`` compare and spell versions; ``covered_until``
says how far a cursor has read every change; ``get_many`` reads drifted records back and
``presence`` tells a deleted record (``Gone``) from one merged into another (``MergedInto``).
A stream recognises what it already returned before the cursor it was given and counts it in
``Page.repeated`` instead of returning it again. A system that pushes changes (webhooks) offers a
``PushSource``: it authenticates a delivery and says what changed (``Delivery``); the engine
de-duplicates, emits and answers. ``ResourceDescriptor.parent_role`` says, as data, how the kind
of a record's parent is found (PowerOffice contact persons: customer or supplier).

Stored cursors: the extractor keeps a stream's cursor on a compacted topic. Its first version
spread a cursor over three stored fields (position, seen identities, the time of the read);
``v1_cursor`` wraps those into one string that the stream of that system still reads
(``open_v1_cursor``), so a deployment upgrades in place without reading everything again.

Field vocabulary: a record's fields are addressed by the connector's own paths — PowerOffice's
PascalCase names, Wix's ``info.name.first``/``info.emails[primary].email`` — the same paths a
dataflow file (``dataflows/default.json``) names, so a mapped property is one line there. Each
resource's ``ResourceDescriptor.fields`` is its accessor table: path -> ``FieldAccessor``
(``read`` a record's value, turn a command's text into the API's ``value``, tell whether a
record ``holds`` a value in the field's comparison form, named by ``kind``). The write shape
(how values become a request body) stays inside the connector, behind ``Target``.

Imports: the standard library, pydantic, ``services.core.budget`` and ``services.core.errors``
only (prometheus_client for a type only). Never a connector.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from services.core.budget import ApiBudget
from services.core.errors import ConflictError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

WireRecord = dict[str, Any]
"""A record as the API sent it (a JSON object)."""


@dataclass(frozen=True)
class RecordKey:
    """Where a record lives: its id, plus the parent id some APIs need in the URL (PowerOffice
    contact persons: ``/ContactPersons/{ContactId}/{Id}``). The parent is context, not identity."""

    id: str
    parent_id: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a source stream (see the module docstring for the cursor rules)."""

    records: tuple[WireRecord, ...]
    cursor: str | None
    """Resume here after handling this page (``None``: nothing read yet, start from the top)."""
    last: bool
    """The source had no more records when this page was read."""
    rejected: tuple[Any, ...] = ()
    """Items of the page that are not JSON objects, as sent: never dropped silently — the
    caller dead-letters them."""
    repeated: int = 0
    """Records of this page already returned before the cursor the read started from (the
    overlap), recognised by their identity and left out of ``records``."""


@dataclass(frozen=True)
class Listed:
    """One live record in a scan: its key and version (``None`` when the record carries none)."""

    key: RecordKey
    version: str | None
    changed_ns: int | None = None
    """When the listed version was made (epoch nanoseconds), when the record says."""


@dataclass(frozen=True)
class Observed:
    """What ``SourceStream.observe`` reads from a record: identity, version, change time."""

    key: RecordKey
    version: str
    """The version as the API sent it (kept in the change event)."""
    order: int
    """The version's comparable form: a later version has a greater ``order``."""
    changed_ns: int
    """When the record last changed (epoch nanoseconds, exact)."""


@dataclass(frozen=True)
class Gone:
    """``presence``: the record does not exist any more (a delete)."""


@dataclass(frozen=True)
class Present:
    """``presence``: something still answers for the key (a listing merely missed it)."""


@dataclass(frozen=True)
class MergedInto:
    """``presence``: the record was merged into ``target`` (``record``: the target, if read)."""

    target: RecordKey
    record: WireRecord | None


Presence = Gone | Present | MergedInto


@dataclass(frozen=True)
class Guard:
    """What must still hold for an update to apply. A connector fills what its system enforces:
    ``version`` (a revision) and/or ``expected`` (field path -> value as read)."""

    version: str | None = None
    expected: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """A record after a create or an update, as the system returned it."""

    key: RecordKey
    record: WireRecord
    created: bool = False
    """``create`` only: False when a record with the same reference existed already."""
    matched: bool = False
    """``create`` only: the system refused a duplicate and this is the existing record its natural
    key matched (not one carrying our reference)."""
    applied: bool = True
    """``update`` only: False when the system already held the changes (nothing written)."""
    version: str | None = None
    """The version a later guarded write is sent at (a revision); None where writes are guarded
    by values."""


class GuardRefusedError(ConflictError):
    """The system refused a guarded update: the record changed since the guard was made.
    ``current`` is the record as the refusal showed it (None: read it again)."""

    def __init__(self, message: str, *, current: WireRecord | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.current = current


class FieldAccessor(Protocol):
    """One field of a resource, addressed by its path (the dataflow file's name for it)."""

    @property
    def path(self) -> str: ...

    @property
    def kind(self) -> str:
        """The comparison form: a normaliser key (``name``, ``email``, ``phone``) or ``exact``."""
        ...

    def read(self, record: Mapping[str, Any]) -> Any:
        """The field's value in ``record`` (``None`` when absent)."""
        ...

    def value(self, text: str | None) -> Any:
        """A command's text (the Avro map carries strings) as the value the API takes;
        ``ContractError`` when it cannot be one."""
        ...

    def holds(self, record: Mapping[str, Any], value: Any) -> bool:
        """Whether ``record`` already has ``value`` (compared in the field's comparison form)."""
        ...


FieldTable = Mapping[str, FieldAccessor]
"""A resource's accessor table: field path -> accessor."""


class RecordReader(Protocol):
    """Reading a resource's records as the API sent them (pure: no request)."""

    def key_of(self, record: Mapping[str, Any]) -> RecordKey:
        """The key of a record (``ContractError`` when it carries none)."""
        ...

    def version_of(self, record: Mapping[str, Any]) -> str:
        """The record's version: it changes with every change of the record."""
        ...

    def observe(self, record: object) -> Observed:
        """Identity, version and change time (``ContractError`` when the record lacks one)."""
        ...

    def version_order(self, version: str | None) -> int | None:
        """The comparable form of a version as sent (None when absent or unreadable)."""
        ...

    def canonical_version(self, version: str | None) -> str | None:
        """One spelling per version (two spellings of one version are one observation)."""
        ...


class SourceStream(RecordReader, Protocol):
    """Reading one resource."""

    @property
    def resource(self) -> str: ...

    def pages(self, cursor: str | None, page_size: int) -> Iterator[Page]:
        """Records changed at or after ``cursor`` (``None``: all), oldest change first."""
        ...

    def get(self, key: RecordKey) -> WireRecord | None:
        """The record now, or ``None`` when it is gone."""
        ...

    def scan(self, page_size: int) -> Iterator[Listed]:
        """Every live record's key and version (verification, reconciliation, deletes)."""
        ...

    def covered_until(self, cursor: str | None) -> int | None:
        """Every change made at or before this moment (epoch ns) was returned by the pages
        before ``cursor``; None while no read has got that far (no complete snapshot yet)."""
        ...

    def get_many(self, keys: Sequence[RecordKey]) -> list[WireRecord]:
        """The records of ``keys`` that still exist (absent ones are left out)."""
        ...

    def presence(self, key: RecordKey) -> Presence:
        """Whether a record the engine knows is gone, merged into another, or still there."""
        ...


@dataclass(frozen=True)
class Pushed:
    """One change a system pushed: an UPSERT of ``record`` (``key`` is its key), a DELETE of
    ``key`` (``version``: the last one, when the push says), or a MERGE of ``merged_ids`` into
    ``key`` (``record``: the merge's target, when the push carries it)."""

    operation: Literal["UPSERT", "DELETE", "MERGE"]
    key: RecordKey
    at: datetime
    """When the system says the change happened."""
    record: WireRecord | None = None
    version: str | None = None
    merged_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """One authenticated push: its id (to drop a repeated delivery), its kind (a metric label),
    the resource it is about and the changes it stands for (none: it is implied by another
    one, e.g. a merge's deletes)."""

    event_id: str
    kind: str
    resource: str
    changes: tuple[Pushed, ...] = ()
    ignored: str | None = None
    """Why an authentic delivery is not for this deployment (a metric label), if it is not."""


class PushRejectedError(Exception):
    """A delivery that is not authentic or cannot be read; ``reason`` is a metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PushSource(Protocol):
    """A system's change notifications (webhooks), received on ``path``."""

    @property
    def path(self) -> str: ...

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """Authenticate and read one delivery (``PushRejectedError``; ``ConfigurationError``
        when the verification key itself is unusable)."""
        ...


class RoutedPushSource(PushSource, Protocol):
    """A push source that says which tenant a delivery is for, so that a deployment serving many
    tenants can hand it to the replica that runs that tenant."""

    @property
    def tenant_setting(self) -> str:
        """The setting (a field of the services' settings, set per tenant in its registration)
        whose value a delivery names, e.g. the installation the system sent it for."""
        ...

    def tenant_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Authenticate the delivery and return the ``tenant_setting`` value it names (None: it
        names none); ``PushRejectedError`` / ``ConfigurationError`` as ``receive``."""
        ...


V1_CURSOR = "tether.v1_cursor"
"""The key of the envelope ``v1_cursor`` makes (no stream's own cursor uses it)."""


@dataclass(frozen=True)
class V1Cursor:
    """A cursor as the extractor's first version stored it, in three fields."""

    position: str
    seen: tuple[str, ...]
    read_at: datetime


def v1_cursor(position: str, seen: Sequence[str], read_at: datetime) -> str:
    """Wrap a first-version stored cursor into the one string a stream resumes from."""
    fields = {"position": position, "seen": list(seen), "read_at": read_at.isoformat()}
    return json.dumps({V1_CURSOR: fields}, separators=(",", ":"))


def open_v1_cursor(cursor: str | None) -> V1Cursor | None:
    """The first-version cursor ``cursor`` wraps, or None when it is a stream's own cursor."""
    if not cursor or not cursor.startswith("{"):
        return None
    try:
        fields = json.loads(cursor).get(V1_CURSOR)
        if not isinstance(fields, dict):
            return None
        return V1Cursor(
            str(fields["position"]),
            tuple(str(entry) for entry in fields["seen"]),
            datetime.fromisoformat(fields["read_at"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class StreamOptions:
    """How a source stream reads: how far behind its cursor it re-reads (``overlap_seconds``:
    clock skew, late commits, read lag) and how many identities a cursor remembers to
    recognise what it re-reads (``seen_limit``; forgetting one costs a repeat, never a loss)."""

    overlap_seconds: float = 5.0
    seen_limit: int = 20_000
    clock: Callable[[], datetime] | None = None
    """The local clock the read times come from (None: the system clock)."""


class Target(Protocol):
    """Writing one resource."""

    @property
    def resource(self) -> str: ...

    def create(
        self,
        values: Mapping[str, Any],
        *,
        reference: str,
        parent_id: str | None = None,
        allow_duplicates: bool = True,
        made_after: datetime | None = None,
    ) -> Written:
        """Create a record, or return the one already carrying ``reference`` (``created``
        false), or — ``allow_duplicates`` false — the existing one the system's duplicate rule
        matched (``matched``)."""
        ...

    def guard(self, record: Mapping[str, Any], fields: tuple[str, ...]) -> Guard:
        """The guard of an update of ``fields`` against ``record`` as the caller read it."""
        ...

    def read(self, key: RecordKey) -> Written:
        """The record as it is now, to decide a write on (``NotFoundError`` when it is gone or
        is no longer that record, e.g. merged into another)."""
        ...

    def written(self, record: Mapping[str, Any]) -> Written:
        """A record the caller holds, in the form the target returns records."""
        ...

    def update(
        self,
        key: RecordKey,
        changes: Mapping[str, Any],
        *,
        guard: Guard,
        base: Mapping[str, Any] | None = None,
    ) -> Written:
        """Write ``changes`` (field path -> value, ``None`` clears) unless the guard no longer
        holds (``GuardRefusedError``)."""
        ...

    def delete(self, key: RecordKey) -> None:
        """Delete a record (``NotFoundError`` when it does not exist)."""
        ...


class Client(Protocol):
    """What the engine does with a connector's client itself: close it."""

    def close(self) -> None: ...


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
ClientT = TypeVar("ClientT", bound=Client)
SettingsT_contra = TypeVar("SettingsT_contra", bound=BaseSettings, contravariant=True)
ClientT_contra = TypeVar("ClientT_contra", bound=Client, contravariant=True)


class TargetFactory(Protocol[ClientT_contra, SettingsT_contra]):
    """``targets(client, settings, registry)``: a connector's targets by resource. ``settings``
    (the connector's settings model, or a service's settings extending it) and ``registry``
    (where a target exports its own metrics) are optional."""

    def __call__(
        self,
        client: ClientT_contra,
        settings: SettingsT_contra | None = None,
        registry: CollectorRegistry | None = None,
    ) -> Mapping[str, Target]: ...


@dataclass(frozen=True)
class RateLimit:
    """A system's documented request budget: ``requests`` per ``per_seconds``."""

    requests: float
    per_seconds: float

    def budget(self, name: str, share: float = 1.0) -> ApiBudget:
        """An ``ApiBudget`` for ``share`` of the limit, shaped like every other budget
        (``ApiBudget.for_rate``: a fractional share keeps its average by stretching the window)."""
        return ApiBudget.for_rate(name, self.requests * share, self.per_seconds)


@dataclass(frozen=True)
class ResourceDescriptor:
    """One resource of a system, as the engine needs to know it."""

    name: str
    """The engine's name (``employees``, ``contact_persons``, ``contacts``)."""
    record_schema: type[BaseModel]
    """The pydantic model of a record (``model_json_schema()`` documents it)."""
    key_field: str
    version_field: str
    reference_field: str
    """Where a create's idempotency reference is kept."""
    record_type: str
    """The full name of the Avro record type that carries a record in messages
    (``schemas/<record_type>.avsc``; ``services.core.records``)."""
    api_name: str | None = None
    """The API's name of the resource, where it differs from ``name`` (PowerOffice's
    ``contactpersons``)."""
    changed_field: str | None = None
    """Where a record says when it last changed, where that is not ``version_field`` (a
    revision)."""
    parent_field: str | None = None
    fields: FieldTable = field(default_factory=dict)
    """The fields the engine reads and writes, by path."""
    guarded_by: str = "values"
    """What an update's guard is: ``version`` (the record's ``version_field``: a revision the
    write is sent at) or ``values`` (the written fields' expected values)."""
    reference_required: bool = True
    """False: a create may go without an idempotency reference of its own (a natural key finds
    it again; the caller supplies a stand-in)."""
    parent_role: ParentRole | None = None
    """How the kind of a record's parent is told (``ChangeEvent.parent_kind``), if it has one."""

    @property
    def api_resource(self) -> str:
        """The API's name of the resource."""
        return self.api_name or self.name

    @property
    def changed_at_field(self) -> str:
        """Where a record says when it last changed."""
        return self.changed_field or self.version_field


@dataclass(frozen=True)
class ParentRole:
    """A resource whose records belong to parents of several kinds that the API does not tell
    apart (PowerOffice lists customers' and suppliers' contact persons together): a parent that
    is a record of ``resource`` makes ``found``, any other parent ``otherwise``.

    A lookup that finds no such parent is believed only for a record older than the system's
    read lag (``created_field``: the record's creation time; reads may lag a fresh parent)."""

    resource: str
    found: str
    otherwise: str
    created_field: str | None = None


@dataclass(frozen=True)
class ConnectorDescriptor(Generic[SettingsT, ClientT]):
    """Everything the engine needs to run one system."""

    system: str
    resources: Mapping[str, ResourceDescriptor]
    settings_model: type[SettingsT]
    rate_limit: RateLimit
    client_factory: Callable[[SettingsT, ApiBudget], ClientT]
    """Builds a client from validated settings (credentials checked: ``ConfigurationError``)."""
    streams: Callable[[ClientT, StreamOptions], Mapping[str, SourceStream]]
    targets: TargetFactory[ClientT, SettingsT]

    def resource(self, name: str) -> ResourceDescriptor:
        try:
            return self.resources[name]
        except KeyError:
            raise KeyError(f"{self.system} has no resource {name!r}") from None

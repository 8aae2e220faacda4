"""Wix Contacts v4 behind the connector interface (``services.core.connector``).

Adapters only: every request, retry, token renewal and error is ``WixClient``'s, unchanged.

* ``WixStream`` (``stream.py``) — passes over ``updatedDate >= floor`` keyset-paged on
  ``createdDate``; the next pass starts no later than the previous one's start minus the
  overlap, so a contact edited behind the reader is read again and none is skipped. ``scan``:
  every contact's id, revision and ``updatedDate``; ``presence`` tells a merged contact (Get
  answers ``MERGED``) from a deleted one. Webhooks: ``receiver.py`` (a ``PushSource``).
* ``WixTarget`` — fields are addressed by path (the accessor table ``fields.FIELDS``: the
  dataflow file's ``hub_field``s). ``create`` links the contact Wix's duplicate rule matches
  (e-mail/phone), else keeps the idempotency reference in the custom extended field
  ``tether-link-id`` and finds a contact carrying it before creating — with a cached,
  exported refusal and a name-only fallback when extended fields are refused (the class
  docstring); ``update`` rebuilds the minimal ``info`` from ``base`` (else the contact as it is
  now) and sends it at the *guard's* revision, so Wix itself refuses a stale guard (409
  ``CONTACT_ALREADY_CHANGED`` -> ``GuardRefusedError``); ``read`` refuses a merged-away
  contact; ``delete`` by id. ``targets(client, settings, registry)`` takes the link field's
  name from ``WixSettings.wix_link_field_name`` and exports ``LinkFieldMetrics`` (the metric
  names the loader always had) into ``registry``.

Imports: the Wix client, models and field table, prometheus_client, ``services.core`` — never
the simulator.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.connectors.wix.client import (
    DuplicateContactError,
    WixClient,
    auth_from_settings,
)
from services.connectors.wix.fields import FIELDS, NATURAL_KEYS, info_for_create, info_for_update
from services.connectors.wix.models import Contact, parse_contact
from services.connectors.wix.stream import RESOURCE, SYSTEM, WixStream
from services.core.budget import ApiBudget
from services.core.connector import (
    ConnectorDescriptor,
    Guard,
    GuardRefusedError,
    RateLimit,
    RecordKey,
    ResourceDescriptor,
    SourceStream,
    StreamOptions,
    Target,
    Written,
)
from services.core.errors import (
    ConflictError,
    ContractError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    TransportError,
    ValidationError,
)
from services.core.settings import WixSettings
from services.core.wix_items import clean_text

LINK_FIELD: Final = "tether-link-id"
"""Display name of the custom extended field holding a create's idempotency reference."""


def _ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _known(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValidationError(
            f"{SYSTEM} {RESOURCE}: no writable field {unknown}; known: {sorted(FIELDS)}",
            system=SYSTEM,
        )
    return dict(values)


CONTACT_ALREADY_CHANGED: Final = "CONTACT_ALREADY_CHANGED"
CONTACT_MERGED: Final = "CONTACT_MERGED"
KEYLESS_CREATE_AMBIGUOUS: Final = "KEYLESS_CREATE_AMBIGUOUS"
#: A refusal that repeats (403 permission missing, 404 API absent) is not asked again for this
#: long; an outage (5xx, no answer) for this long. Either way: one call per period, not per record.
LINK_FIELD_REFUSED_SECONDS: Final = 3600.0
LINK_FIELD_OUTAGE_SECONDS: Final = 60.0
#: Wix's ``createdDate`` and the source's change time come from different clocks.
FALLBACK_CLOCK_SKEW: Final = timedelta(minutes=5)
FIRST, LAST, EMAIL = "info.name.first", "info.name.last", "info.emails[primary].email"

#: The loader's log (the target only runs there); operators' filters know this name.
target_log = logging.getLogger("tether.loader.wix")


@dataclass(frozen=True)
class LinkFieldRefusal:
    """Why the ``tether-link-id`` field cannot be used, and until when that is assumed."""

    reason: str  # permission_denied | not_found | unavailable
    detail: str  # the error's text: status and code, no secret, no personal data
    until: float  # monotonic


class LinkFieldMetrics:
    """Whether keyless contacts can carry the ``tether-link-id`` extended field: a refusal is
    exported once per cached period, not per record."""

    REASONS = ("permission_denied", "not_found", "unavailable")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.unavailable = Gauge(
            "tether_loader_wix_link_field_unavailable",
            "1 while the Wix Extended Fields API refuses the tether-link-id field, by reason "
            "(permission_denied: the API key lacks the permission; not_found; unavailable: 5xx "
            "or no answer); keyless contacts are then created by the name-only fallback",
            ["reason"],
            registry=registry,
        )
        self.fallback_creates = Counter(
            "tether_loader_wix_fallback_creates",
            "Keyless Wix contacts handled without the tether-link-id field (created, or found "
            "again after a lost answer)",
            ["how"],
            registry=registry,
        )
        self.clear()

    def refused(self, reason: str) -> None:
        for known in self.REASONS:
            self.unavailable.labels(known).set(1 if known == reason else 0)

    def clear(self) -> None:
        for known in self.REASONS:
            self.unavailable.labels(known).set(0)

    def fallback(self, how: str) -> None:
        self.fallback_creates.labels(how).inc()


def _refusal_reason(error: Exception) -> str:
    if isinstance(error, PermissionDeniedError):
        return "permission_denied"
    if isinstance(error, NotFoundError):
        return "not_found"
    return "unavailable"


class WixTarget:
    """``Target`` of Wix contacts.

    create — a contact with an e-mail or phone is posted with ``allowDuplicates: false``; a
      ``DUPLICATE_CONTACT_EXISTS`` answers with the contact the rule matched (``matched``).
      Without a natural key (nothing the duplicate rule can find), or with ``allow_duplicates``
      (Wix would not refuse a retry either), the reference goes into the extended field
      ``tether-link-id`` and is looked up before the contact is created (found -> ``created``
      false). When the Extended Fields API refuses (403: the API key lacks the permission; 404;
      5xx), the refusal is cached (``LINK_FIELD_REFUSED_SECONDS`` / ``LINK_FIELD_OUTAGE_SECONDS``:
      one call per period, not one per record), logged once and exported
      (``LinkFieldMetrics``), and a keyless contact is created by the *fallback*: look first for
      a name-only contact with exactly this name created since ``made_after`` (minus
      ``FALLBACK_CLOCK_SKEW``); one -> it (``created`` false), none -> create without the field,
      several -> ``ConflictError`` ``KEYLESS_CREATE_AMBIGUOUS`` (a review item).
      docs/wix-decisions.md says why no better reference exists.
    read — a contact merged into another is not the contact we write: ``NotFoundError``
      ``CONTACT_MERGED``.
    update — the minimal ``info`` computed against ``base`` (else the contact read now), sent at
      the guard's revision: a stale one is refused by Wix (409 ``CONTACT_ALREADY_CHANGED`` ->
      ``GuardRefusedError``); a new primary e-mail owned by another contact raises
      ``DuplicateContactError``.
    """

    def __init__(
        self,
        client: WixClient,
        link_field: str = LINK_FIELD,
        *,
        metrics: LinkFieldMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self._link_field = link_field
        self._link_key: str | None = None
        self._refusal: LinkFieldRefusal | None = None
        self._metrics = metrics
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()

    @property
    def resource(self) -> str:
        return RESOURCE

    @property
    def link_field_refusal(self) -> LinkFieldRefusal | None:
        """The cached refusal of the Extended Fields API, while it holds."""
        with self._lock:
            refusal = self._refusal
        return refusal if refusal is not None and self._clock() < refusal.until else None

    def link_field_key(self) -> str | None:
        """The key of the ``tether-link-id`` extended field (found or created once), or None
        while the Extended Fields API refuses (the refusal is cached)."""
        with self._lock:
            if self._link_key is not None:
                return self._link_key
            if self._refusal is not None and self._clock() < self._refusal.until:
                return None
            try:
                key = self.client.find_or_create_extended_field(self._link_field)
            except (PermissionDeniedError, NotFoundError, ServerError, TransportError) as exc:
                self._refused(exc)
                return None
            if self._refusal is not None:
                target_log.info("wix extended field %s usable again", self._link_field)
                self._refusal = None
            if self._metrics is not None:
                self._metrics.clear()
            self._link_key = key
            return key

    def _refused(self, error: Exception) -> None:
        """Cache, log (once per period) and export a refusal. Called under ``_lock``."""
        reason = _refusal_reason(error)
        permanent = reason != "unavailable"
        seconds = LINK_FIELD_REFUSED_SECONDS if permanent else LINK_FIELD_OUTAGE_SECONDS
        self._refusal = LinkFieldRefusal(reason, str(error), self._clock() + seconds)
        if self._metrics is not None:
            self._metrics.refused(reason)
        fix = {
            "permission_denied": "extended fields permission missing: give the Wix API key "
            "(or app) the permission to manage contacts' extended fields",
            "not_found": "the Extended Fields API is not available to this site or key",
            "unavailable": "Wix's Extended Fields API is failing (outage)",
        }[reason]
        target_log.warning(
            "wix extended field %s cannot be defined (%s): %s; contacts with neither e-mail nor "
            "phone are created by the name-only fallback (docs/wix-decisions.md); asking again "
            "in %.0f s",
            self._link_field,
            error,
            fix,
            seconds,
        )

    @staticmethod
    def _written(contact: Contact, *, created: bool = False, matched: bool = False) -> Written:
        return Written(
            RecordKey(contact.id),
            contact.to_wire(),
            created=created,
            matched=matched,
            version=str(contact.revision),
        )

    def create(
        self,
        values: Mapping[str, Any],
        *,
        reference: str,
        parent_id: str | None = None,
        allow_duplicates: bool = False,
        made_after: datetime | None = None,
    ) -> Written:
        given = _known(values)
        has_natural_key = any(clean_text(given.get(path)) for path in NATURAL_KEYS)
        extended: dict[str, str | int | float] | None = None
        if not has_natural_key or allow_duplicates:
            key = self.link_field_key()
            if key is None and not has_natural_key:
                return self._create_without_link_field(given, made_after)
            if key is not None:
                found = self.client.find_by_extended_field(key, reference)
                if found:
                    # An earlier attempt created it (its outcome was lost): ours, no duplicate.
                    return self._written(found[0])
                extended = {key: reference}
        info = info_for_create(given, extended_fields=extended)
        if not any(part in info for part in ("name", "emails", "phones")):
            raise ContractError(f"{SYSTEM} {RESOURCE}: a create needs a name, email or phone")
        try:
            contact = self.client.create_info(info, allow_duplicates=allow_duplicates)
        except DuplicateContactError as exc:
            return self._matched(exc, given)
        return self._written(contact, created=True)

    def _create_without_link_field(
        self, given: Mapping[str, Any], made_after: datetime | None
    ) -> Written:
        """The fallback for a keyless contact when ``tether-link-id`` cannot be used: find a
        name-only contact with this exact name created since ``made_after``, else create one."""
        first, last = clean_text(given.get(FIRST)), clean_text(given.get(LAST))
        if first is None and last is None:
            raise ContractError(f"{SYSTEM} {RESOURCE}: a create needs a name, email or phone")
        since = (made_after or self._now()) - FALLBACK_CLOCK_SKEW
        conditions: list[dict[str, Any]] = [{"createdDate": {"$gte": _ms(since)}}]
        conditions += [
            {f"info.name.{part}": {"$eq": value}}
            for part, value in (("first", first), ("last", last))
            if value is not None
        ]
        found = [
            c
            for c in self.client.iter_query({"$and": conditions})
            if (c.first_name, c.last_name) == (first, last) and not c.emails and not c.phones
        ]
        if len(found) > 1:
            raise ConflictError(
                f"extended fields unusable ({self._refusal_text()}) and {len(found)} name-only "
                "contacts with this name were created since the change: which one is ours "
                "cannot be told",
                system=SYSTEM,
                status=409,
                error_code=KEYLESS_CREATE_AMBIGUOUS,
                data={"contactIds": [c.id for c in found]},
            )
        if found:
            # An earlier attempt created it (its outcome was lost): ours, not a duplicate.
            if self._metrics is not None:
                self._metrics.fallback("found")
            return self._written(found[0])
        contact = self.client.create({FIRST: first, LAST: last}, allow_duplicates=False)
        if self._metrics is not None:
            self._metrics.fallback("created")
        return self._written(contact, created=True)

    def _refusal_text(self) -> str:
        refusal = self.link_field_refusal
        return refusal.detail if refusal is not None else "refused"

    def _matched(self, error: DuplicateContactError, given: Mapping[str, Any]) -> Written:
        contact_id = error.duplicate_contact_id
        if contact_id is None:
            email = clean_text(given.get(EMAIL))
            candidates = self.client.find_by_email(email) if email else []
            if len(candidates) != 1:
                raise error
            contact_id = candidates[0].id
        return self._written(self.client.get(contact_id).contact, matched=True)

    def guard(self, record: Mapping[str, Any], fields: tuple[str, ...]) -> Guard:
        revision = record.get("revision")
        if not isinstance(revision, int):
            raise ContractError(f"{SYSTEM} {RESOURCE}: contact without a revision")
        return Guard(version=str(revision))

    def read(self, key: RecordKey) -> Written:
        found = self.client.get(key.id)
        if found.merged:
            raise NotFoundError(
                "contact was merged into another contact",
                system=SYSTEM,
                status=404,
                error_code=CONTACT_MERGED,
            )
        return self._written(found.contact)

    def written(self, record: Mapping[str, Any]) -> Written:
        return self._written(parse_contact(record))

    def update(
        self,
        key: RecordKey,
        changes: Mapping[str, Any],
        *,
        guard: Guard,
        base: Mapping[str, Any] | None = None,
    ) -> Written:
        given = _known(changes)
        current = parse_contact(base) if base is not None else self.client.get(key.id).contact
        info = info_for_update(current, given)
        if not info:
            return self._written(current)
        revision = int(guard.version) if guard.version is not None else current.revision
        try:
            contact = self.client.update_info(current.id, revision, info)
        except DuplicateContactError:
            raise  # the new primary e-mail belongs to another contact
        except ConflictError as exc:
            if exc.error_code != CONTACT_ALREADY_CHANGED:
                raise
            raise GuardRefusedError(
                str(exc), system=SYSTEM, status=exc.status, error_code=exc.error_code
            ) from exc
        return self._written(contact)

    def delete(self, key: RecordKey) -> None:
        self.client.delete(key.id)


def make_client(settings: WixSettings, budget: ApiBudget) -> WixClient:
    """A production client from settings (API key + site, or the app's three credentials)."""
    return WixClient(auth_from_settings(settings), budget, base_url=settings.wix_base_url)


def streams(client: WixClient, options: StreamOptions) -> dict[str, SourceStream]:
    return {RESOURCE: WixStream(client, options)}


def targets(
    client: WixClient,
    settings: WixSettings | None = None,
    registry: CollectorRegistry | None = None,
) -> dict[str, Target]:
    """The contacts target; ``settings`` name the link field, ``registry`` takes its metrics."""
    link_field = settings.wix_link_field_name if settings is not None else LINK_FIELD
    metrics = LinkFieldMetrics(registry) if registry is not None else None
    return {RESOURCE: WixTarget(client, link_field, metrics=metrics)}


DESCRIPTOR: Final = ConnectorDescriptor[WixSettings, WixClient](
    system=SYSTEM,
    resources={
        RESOURCE: ResourceDescriptor(
            name=RESOURCE,
            record_schema=Contact,
            key_field="id",
            version_field="revision",
            reference_field=f"info.extendedFields.items.custom.{LINK_FIELD}",
            record_type="tether.wix.Contact",
            changed_field="updatedDate",
            fields=FIELDS,
            guarded_by="version",
            reference_required=False,
        )
    },
    settings_model=WixSettings,
    rate_limit=RateLimit(requests=200, per_seconds=60.0),
    client_factory=make_client,
    streams=streams,
    targets=targets,
)
"""The Wix Contacts v4 connector (200 requests/minute per app instance)."""

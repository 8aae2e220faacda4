"""Whose contact person is it: a customer's or a supplier's (``ChangeEvent.parent_kind``).

``GET /ContactPersons`` lists the contact persons of customers *and* suppliers, and the record
only names its parent's ``ContactId``. The spec syncs all by default, with a filter in
configuration (``Policy.contact_persons.include_suppliers``), so the extractor says which one it
is. In PowerOffice, customer and supplier are roles of one contact (one ``Id`` can hold both): a
parent with the customer role makes a customer's contact person, any other parent a supplier's.

``ParentKinds.kind(parent_id)``:

1. a customer in the known set (live) -> ``"customer"`` (no call; the customers are polled before
   the contact persons, so during a snapshot nearly every parent is found here);
2. a cached answer younger than ``ttl`` seconds;
3. else one ``GET /Customers/{id}``: 200 -> ``"customer"``, cached for ``ttl``;
4. a 404 is only proof of "no customer role" when the parent is old enough for every read
   replica to have it. PowerOffice reads may lag its writes (a replica; no read-your-writes is
   promised) and a contact person can only be created under an existing parent, so the parent is
   at least as old as the contact person: a contact person created more than ``settle_seconds``
   ago (its ``CreatedDateTimeOffset``; unknown counts as old) -> ``"supplier"``, cached for
   ``ttl``. A younger one -> ``ParentNotSettledError`` (retriable), nothing cached: the page
   fails and is read again next cycle, when the fresh customer is readable (or the contact
   person is old enough for the 404 to be believed). A supplier's contact person therefore
   waits at most ``settle_seconds`` after its creation; a fresh customer's one is never
   emitted as a supplier's (with ``include_suppliers`` off it would be dropped).
5. any other error propagates the same way, so a contact person is never emitted as "unknown"
   because PowerOffice had a bad moment.

Suppliers have their own resource in PowerOffice (``/Suppliers``), but our reference documents
neither its paths nor its semantics, so the rule above asks only ``/Customers``.

Imports: the core errors and the extractor's known set; the lookup is injected (the production
client's ``get_customer``), so this module makes no HTTP call of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.core.errors import NotFoundError, TetherError
from services.extractor.known import KnownSet

CUSTOMER = "customer"
SUPPLIER = "supplier"


class ParentNotSettledError(TetherError):
    """``GET /Customers/{id}`` said 404 for the parent of a contact person created too recently
    for that to be trusted (the read may lag the parent's creation); try again later."""

    retriable = True


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ParentKinds:
    def __init__(
        self,
        customers: KnownSet,
        customer_exists: Callable[[int], object],
        *,
        ttl: float = 3600.0,
        settle_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``customer_exists(id)`` returns on 200 and raises ``NotFoundError`` on 404. ``now``
        is the wall clock compared with PowerOffice's ``CreatedDateTimeOffset``."""
        self._customers = customers
        self._lookup = customer_exists
        self._ttl = ttl
        self._settle = timedelta(seconds=settle_seconds)
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.lookups = 0
        """API calls made (tests and metrics)."""

    def kind(self, parent_id: str | None, child_created: datetime | None = None) -> str | None:
        """``"customer"`` or ``"supplier"``; None when the record names no (numeric) parent.

        ``child_created``: the contact person's ``CreatedDateTimeOffset`` (None: unknown, taken
        as old). Raises ``ParentNotSettledError`` when a 404 cannot be trusted yet.
        """
        if parent_id is None or not parent_id.isdigit():
            return None
        known = self._customers.get(parent_id)
        if known is not None and not known.deleted:
            return CUSTOMER
        now = self._clock()
        with self._lock:
            cached = self._cache.get(parent_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        self.lookups += 1
        try:
            self._lookup(int(parent_id))
            kind = CUSTOMER
        except NotFoundError as exc:
            if child_created is not None and self._now() - child_created < self._settle:
                # Maybe a customer created a moment ago that this read does not show yet.
                raise ParentNotSettledError(
                    f"poweroffice parent {parent_id}: 404 within {self._settle.total_seconds():g}"
                    " s of its contact person's creation; asking again next cycle"
                ) from exc
            kind = SUPPLIER
        with self._lock:
            self._cache[parent_id] = (kind, now + self._ttl)
        return kind

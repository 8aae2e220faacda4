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
3. else one ``GET /Customers/{id}``: 200 -> ``"customer"``, 404 -> ``"supplier"``; cached. Any
   other error propagates: the page fails and is read again next cycle, so a supplier's contact
   person is never emitted as "unknown" because PowerOffice had a bad moment.

Imports: the core errors and the extractor's known set; the lookup is injected (the production
client's ``get_customer``), so this module makes no HTTP call of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from services.core.errors import NotFoundError
from services.extractor.known import KnownSet

CUSTOMER = "customer"
SUPPLIER = "supplier"


class ParentKinds:
    def __init__(
        self,
        customers: KnownSet,
        customer_exists: Callable[[int], object],
        *,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``customer_exists(id)`` returns on 200 and raises ``NotFoundError`` on 404."""
        self._customers = customers
        self._lookup = customer_exists
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.lookups = 0
        """API calls made (tests and metrics)."""

    def kind(self, parent_id: str | None) -> str | None:
        """``"customer"`` or ``"supplier"``; None when the record names no (numeric) parent."""
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
        except NotFoundError:
            kind = SUPPLIER
        with self._lock:
            self._cache[parent_id] = (kind, now + self._ttl)
        return kind

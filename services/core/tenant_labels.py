"""The ``tenant`` label value of a per-tenant metric, with bounded cardinality.

One deployment serves many tenants; a label value per tenant is one time series per tenant and
per other label value. :class:`TenantLabels` keeps that bounded: the first ``cap`` distinct
tenants it is asked about get their own id as label value, every later one shares
:data:`OTHER` (``_other``), so a metric has at most ``cap + 1`` tenant values whatever the
registry holds. The cap is the ``TETHER_METRICS_TENANT_CAP`` setting (default 100). A tenant
keeps its label for the life of the process (a series never changes its meaning mid-way); the
order of first sight decides, so callers ask in a stable order (their own tenant first, then
sorted ids). :meth:`TenantLabels.sum_by_label` folds counts keyed by tenant into counts keyed
by label — what a gauge refreshed from one grouped query needs.

Thread-safe: a lock guards the assignment (the mapper's maintenance and the HTTP scrape may
run in different threads).

Imports: the standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

#: The label value shared by the tenants beyond the cap.
OTHER = "_other"
#: Default of ``TETHER_METRICS_TENANT_CAP``.
DEFAULT_TENANT_CAP = 100


class TenantLabels:
    def __init__(self, cap: int = DEFAULT_TENANT_CAP) -> None:
        if cap < 1:
            raise ValueError("the tenant label cap is at least 1")
        self.cap = cap
        self._own: set[str] = set()
        self._lock = threading.Lock()

    def label(self, tenant: str) -> str:
        """``tenant`` itself while fewer than ``cap`` tenants have their own label, else
        ``_other`` (a tenant that got its own label keeps it)."""
        with self._lock:
            if tenant in self._own:
                return tenant
            if len(self._own) < self.cap and tenant != OTHER:
                self._own.add(tenant)
                return tenant
            return OTHER

    def labels(self, tenants: Iterable[str]) -> dict[str, str]:
        """tenant -> label for each of ``tenants``, assigned in sorted order (stable)."""
        return {tenant: self.label(tenant) for tenant in sorted(set(tenants))}

    def sum_by_label(self, counts: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        """``(tenant, value) -> n`` folded into ``(label, value) -> n``: the tenants beyond the
        cap are summed into ``(_other, value)``."""
        labels = self.labels(tenant for tenant, _ in counts)
        totals: dict[tuple[str, str], int] = {}
        for (tenant, value), n in counts.items():
            key = (labels[tenant], value)
            totals[key] = totals.get(key, 0) + n
        return totals

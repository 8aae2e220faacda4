"""Pushes for any tenant at any replica: the route of a ``RoutedPushSource`` in a fleet.

A replica serving the registry's tenants (``fleet.py``) serves each routed push source's path
once for all tenants. Per delivery, in this order:

1. until the replica has read the tenant directory once: **503** (the sender retries);
2. ``source.tenant_key``: authenticate (forged, expired, malformed -> **401**, counted) and read
   the tenant key the delivery names (for Wix: the site's ``instanceId``);
3. the tenant whose registration has that key in the source's ``tenant_setting`` (every replica
   follows the whole directory); none -> **200** ``ignored``/``other_instance``, as a
   single-tenant extractor answers a delivery for another installation; a paused tenant ->
   **200** ``ignored``/``paused`` (polling reads the change when it resumes);
4. this replica runs the tenant -> its push receiver answers (``webhook.py``: as a single-tenant
   extractor does);
5. otherwise the delivery is forwarded as received (``ForwardedPush`` on ``<prefix>.webhooks``,
   keyed by tenant, so it lands on the partition whose owner runs the tenant) and answered
   **200** ``forwarded`` only once Kafka acknowledged it; no acknowledgement in time -> **503**.
   The owner verifies it again and hands it to the tenant's receiver (``Fleet``), which
   de-duplicates by event id and known version: a repeat changes nothing.

A tenant registered a moment ago may be unknown to this replica for up to the directory's refresh
interval: its deliveries are answered ``ignored`` meanwhile and its changes arrive by polling.

Imports: the connector interface, the core errors, the tenant model and the extractor's own
modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from services.core.connector import RoutedPushSource
from services.core.errors import TransportError
from services.extractor.metrics import ExtractorMetrics
from services.extractor.tenancy import tenant_for
from services.extractor.webhook import Answer, answer, verified
from services.tenants.model import Tenant

log = logging.getLogger("tether.extractor.routing")

Handler = Callable[[bytes, dict[str, str]], Answer]


class PushRouter:
    def __init__(
        self,
        system: str,
        source: RoutedPushSource,
        metrics: ExtractorMetrics,
        *,
        tenants: Callable[[], Mapping[str, Tenant]],
        loaded: Callable[[], bool],
        local: Callable[[str, str], Handler | None],
        forward: Callable[[str, str, str, bytes, dict[str, str]], None],
    ) -> None:
        """``tenants``/``loaded``: the followed directory; ``local(tenant, path)``: the receiver
        of a tenant this replica runs (None: not here, or not started yet); ``forward(tenant,
        system, path, body, headers)``: produce a ``ForwardedPush``, acknowledged on return
        (``TransportError`` otherwise)."""
        self.system = system
        self.source = source
        self.metrics = metrics
        self.tenants = tenants
        self.loaded = loaded
        self.local = local
        self.forward = forward

    @property
    def path(self) -> str:
        return self.source.path

    def count(self, outcome: str, reason: str) -> None:
        self.metrics.webhooks.labels(outcome, reason).inc()

    def __call__(self, body: bytes, headers: dict[str, str]) -> Answer:
        received = time.monotonic()
        if not self.loaded():
            self.count("unavailable", "starting")
            return answer(503, error="starting")
        # 2. authenticate, read the tenant key
        key, refused = verified(
            lambda: self.source.tenant_key(body, headers), self.count, self.path
        )
        if refused is not None:
            return refused
        # 3. whose
        tenant = tenant_for(self.tenants(), self.source.tenant_setting, key) if key else None
        if tenant is None:
            self.count("ignored", "other_instance")
            return answer(200, status="ignored")
        if not tenant.runs:
            self.count("ignored", "paused")
            return answer(200, status="ignored")
        # 4. here
        handler = self.local(tenant.tenant, self.path)
        if handler is not None:
            return handler(body, headers)
        # 5. there: durably, before 200
        try:
            self.forward(tenant.tenant, self.system, self.path, body, headers)
        except TransportError:
            self.count("unavailable", "kafka")
            log.warning("forwarded webhook not acknowledged by Kafka in time: answering 503")
            return answer(503, error="unavailable")
        finally:
            self.metrics.webhook_seconds.labels().observe(time.monotonic() - received)
        self.count("forwarded", "owner_elsewhere")
        return answer(200, status="forwarded")

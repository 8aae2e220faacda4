"""The extractor service: wiring (clients, budgets, cursors, known set, webhook route) and its loop.

:class:`Extractor` is built on a ``ServiceContext``. ``start()`` provisions topics (idempotent),
loads the cursors and rebuilds the known set from the changes topics, then marks the service ready
(``/readyz``; the webhook receiver answers 503 before). ``run(runtime)`` is the service loop: it
runs every poller whose interval elapsed (each cycle pages, and per page produces -> waits for the
acks -> saves the cursor), then every due reconciliation, and sleeps until the next is due. A stop
request (SIGTERM) ends a cycle after its current page; nothing is lost because the cursor only
covers acknowledged pages. A failing cycle is logged, counted and retried at the next interval.
``poll_all()`` / ``reconcile_all()`` run one round directly (``--once``, tests, benchmarks).

Budgets: each client takes its share of its API's budget (``ApiBudget``; 0 = lifted), exported by
``BudgetCollector``; API calls and statuses are counted through the clients' ``on_request``.

Imports: the connectors' production clients, the core service context and the extractor modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.connectors.poweroffice.client import PowerOfficeClient, require_credentials
from services.connectors.wix.client import (
    WixClient,
    auth_from_settings,
)
from services.core.budget import ApiBudget, process_share
from services.core.deadletters import reason_of
from services.core.errors import ConfigurationError
from services.core.kafka import provision_topics, retry_while_unreachable
from services.core.metrics import BudgetCollector
from services.core.runtime import ServiceRuntime
from services.core.service import ServiceContext
from services.extractor.bootstrap import rebuild_known
from services.extractor.cursors import CursorStore
from services.extractor.dedup import EventDeduplicator
from services.extractor.emitter import Emitter
from services.extractor.known import KnownSet
from services.extractor.metrics import ExtractorMetrics
from services.extractor.parents import ParentKinds
from services.extractor.poweroffice import RESOURCES as PO_RESOURCES
from services.extractor.poweroffice import PowerOfficePoller, PowerOfficeScanner
from services.extractor.reconciler import Reconciler
from services.extractor.reconciliation import BreakerLimits
from services.extractor.settings import ExtractorSettings, budget_shape
from services.extractor.webhook import PATH as WEBHOOK_PATH
from services.extractor.webhook import WixWebhookReceiver
from services.extractor.wix import WixPoller, WixScanner

log = logging.getLogger("tether.extractor")

DAY_SECONDS = 86_400.0


class Poller(Protocol):
    system: str
    resource: str

    def cycle(
        self, should_stop: Callable[[], bool] = ..., heartbeat: Callable[[], None] = ...
    ) -> int: ...

    def lag_seconds(self) -> float: ...


@dataclass
class _Task:
    name: str
    interval: float
    due: float
    action: Callable[[], object]
    labels: tuple[str, str]
    kind: str  # poll | reconcile
    failures: int = field(default=0)


def next_due(started: float, interval: float, now: float) -> float:
    """When a task that started at ``started`` runs next: one ``interval`` after it started (a
    period counted from the end would add the cycle's duration to every change's wait), or
    ``now`` if the cycle took longer than that (no burst of missed cycles)."""
    return max(started + interval, now)


def check_webhooks_off(settings: ExtractorSettings) -> None:
    """No webhook route: refuse to start when webhooks are expected without a key, else say so."""
    if settings.webhooks_expected():
        raise ConfigurationError(
            "Wix webhooks are expected (TETHER_WIX_WEBHOOKS_ENABLED, or the Wix app is "
            "installed: app id + instance id) but no webhook public key is configured: set "
            "TETHER_WIX_WEBHOOK_PUBLIC_KEY (secret file tether_wix_webhook_public_key) or "
            "TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE, or TETHER_WIX_WEBHOOKS_ENABLED=false to poll only"
        )
    # Switched off on purpose: INFO; merely unconfigured: WARNING (an operator should know).
    log.log(
        logging.INFO if settings.wix_webhooks_enabled is False else logging.WARNING,
        "Wix webhooks off: Wix changes arrive by polling every %.0f s",
        settings.wix_poll_interval_seconds,
        extra={"fields": {"wix_poll_interval_seconds": settings.wix_poll_interval_seconds}},
    )


class Extractor:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: ExtractorSettings,
        *,
        poweroffice_client: PowerOfficeClient | None = None,
        wix_client: WixClient | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.tenant = settings.tenant
        self.metrics = ExtractorMetrics(ctx.registry)
        self.ready = False
        self._told_waiting = False
        self.known: dict[tuple[str, str], KnownSet] = {}
        if settings.poweroffice_enabled:
            for resource in PO_RESOURCES:
                self.known[("poweroffice", resource)] = KnownSet("poweroffice", resource)
        if settings.wix_enabled:
            self.known[("wix", "contacts")] = KnownSet("wix", "contacts")
        if not self.known:
            raise ConfigurationError("both systems are disabled: nothing to extract")

        # Budgets: this service's share of each API's limit (0 = lifted).
        # (The Deployment's share split by its replicas: one, the extractor is a singleton.)
        po_share = process_share(settings.poweroffice_budget_share, settings.replicas)
        po_rate = settings.poweroffice_requests_per_second * po_share
        self.poweroffice_budget = ApiBudget(
            f"poweroffice-{self.tenant}-extractor", *budget_shape(po_rate, 1.0)
        )
        wix_share = process_share(settings.wix_budget_share, settings.replicas)
        wix_rate = settings.wix_requests_per_minute * wix_share
        self.wix_budget = ApiBudget(f"wix-{self.tenant}-extractor", *budget_shape(wix_rate, 60.0))
        ctx.registry.register(BudgetCollector([self.poweroffice_budget, self.wix_budget]))

        self.cursors = CursorStore(
            ctx.layout.cursors, ctx.codec, ctx.producer, settings, dead_letters=ctx.dead_letters
        )
        self.emitter = Emitter(ctx, self.metrics, self.known)
        limits = BreakerLimits(
            settings.reconcile_breaker_max_deletes, settings.reconcile_breaker_max_delete_share
        )
        retention = ctx.layout.retention_days * DAY_SECONDS
        self.pollers: list[Poller] = []
        self.reconcilers: list[Reconciler] = []
        self.poweroffice: PowerOfficeClient | None = None
        self.wix: WixClient | None = None
        if settings.poweroffice_enabled:
            self.poweroffice = poweroffice_client or self._poweroffice_client()
            parents = ParentKinds(
                self.known[("poweroffice", "customers")],
                self.poweroffice.get_customer,
                ttl=settings.parent_kind_ttl_seconds,
                settle_seconds=settings.parent_settle_seconds,
            )
            for resource in PO_RESOURCES:
                known = self.known[("poweroffice", resource)]
                po_poller = PowerOfficePoller(
                    self.poweroffice,
                    resource,
                    self.cursors,
                    self.emitter,
                    known,
                    self.metrics,
                    page_size=settings.poweroffice_page_size,
                    tenant=self.tenant,
                    overlap_seconds=settings.poll_overlap_seconds,
                    seen_limit=settings.cursor_seen_limit,
                    parents=parents if resource == "contact_persons" else None,
                )
                self.pollers.append(po_poller)
                scanner = PowerOfficeScanner(
                    self.poweroffice, resource, po_poller, settings.reconcile_page_size
                )
                self.reconcilers.append(
                    Reconciler(
                        scanner,
                        known,
                        self.emitter,
                        self.metrics,
                        limits,
                        retention_seconds=retention,
                    )
                )
        self.receiver: WixWebhookReceiver | None = None
        self.wix_poller: WixPoller | None = None
        if settings.wix_enabled:
            self.wix = wix_client or self._wix_client()
            known = self.known[("wix", "contacts")]
            wix_poller = WixPoller(
                self.wix,
                self.cursors,
                self.emitter,
                known,
                self.metrics,
                page_size=settings.wix_page_size,
                tenant=self.tenant,
                overlap_seconds=settings.poll_overlap_seconds,
                seen_limit=settings.cursor_seen_limit,
            )
            # Wix first: the mapper matches PowerOffice records against the Wix contacts it has
            # seen, so the existing contacts go on Kafka before the records (``_waits``).
            self.pollers.insert(0, wix_poller)
            self.wix_poller = wix_poller
            self.reconcilers.append(
                Reconciler(
                    WixScanner(self.wix, wix_poller),
                    known,
                    self.emitter,
                    self.metrics,
                    limits,
                    retention_seconds=retention,
                )
            )
            key = settings.webhook_public_key_pem()
            if key and settings.wix_webhooks_enabled is not False:
                public = ctx.runtime.public
                if public is None:
                    raise ConfigurationError("the extractor has no public port for its webhook")
                self.receiver = WixWebhookReceiver(
                    key,
                    self.emitter,
                    known,
                    EventDeduplicator(settings.webhook_dedup_size),
                    self.metrics,
                    ack_timeout=settings.webhook_ack_timeout_seconds,
                    ready=lambda: self.ready,
                    instance_id=settings.wix_instance_id,
                )
                receiver = self.receiver
                public.add_route(
                    "POST",
                    WEBHOOK_PATH,
                    receiver,
                    max_body=settings.webhook_max_body_bytes,
                    on_too_large=lambda: receiver.count("rejected", "too_large"),
                )
            else:
                check_webhooks_off(settings)
        ctx.runtime.http.add_check("extractor", lambda: self.ready)
        for poller in self.pollers:
            self.metrics.cursor_lag.labels(poller.system, poller.resource).set_function(
                poller.lag_seconds
            )
        for (system, resource), known_set in self.known.items():
            self.metrics.known.labels(system, resource).set_function(known_set.live_count)

    def _poweroffice_client(self) -> PowerOfficeClient:
        s = self.settings
        require_credentials(s)
        return PowerOfficeClient(
            application_key=s.poweroffice_app_key,
            client_key=s.poweroffice_client_key,
            subscription_key=s.poweroffice_subscription_key,
            budget=self.poweroffice_budget,
            base_url=s.poweroffice_base_url,
            token_url=s.poweroffice_token_url,
            on_request=self.ctx.metrics.observe_api,
        )

    def _wix_client(self) -> WixClient:
        return WixClient(
            auth_from_settings(self.settings),
            self.wix_budget,
            base_url=self.settings.wix_base_url,
            on_request=self.ctx.metrics.observe_api,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, heartbeat: Callable[[], None] = lambda: None) -> None:
        """Provision topics, load cursors, rebuild the known set; then ready."""
        if self.settings.provision_topics:
            provision_topics(self.settings)
        cursors = self.cursors.load()
        heartbeat()
        events = rebuild_known(
            self.settings,
            self.ctx.codec,
            self.ctx.layout,
            self.tenant,
            self.known,
            heartbeat=heartbeat,
        )
        self.ready = True
        log.info(
            "extractor ready",
            extra={
                "fields": {
                    "cursors": cursors,
                    "change_events_read": events,
                    "known_records": {f"{s}/{r}": len(k) for (s, r), k in self.known.items()},
                    "webhooks": self.receiver is not None,
                }
            },
        )

    def close(self) -> None:
        self.ready = False
        for client in (self.poweroffice, self.wix):
            if client is not None:
                client.close()

    # -- one round ----------------------------------------------------------------------------

    def poll_all(
        self, should_stop: Callable[[], bool] = lambda: False, *, raise_errors: bool = True
    ) -> dict[str, int]:
        """One poll cycle of every resource; returns events emitted per ``system/resource``."""
        emitted: dict[str, int] = {}
        for poller in self.pollers:
            if should_stop():
                break
            if self._waits(poller.system):
                continue
            name = f"{poller.system}/{poller.resource}"
            try:
                emitted[name] = self._poll(poller, should_stop, lambda: None)
            except Exception as exc:
                self._failed("poll", (poller.system, poller.resource), exc)
                if raise_errors:
                    raise
        return emitted

    def reconcile_all(self, *, raise_errors: bool = True) -> None:
        for reconciler in self.reconcilers:
            if self._waits(reconciler.labels[0]):
                continue
            try:
                reconciler.run()
            except Exception as exc:
                self._failed("reconcile", reconciler.labels, exc)
                if raise_errors:
                    raise

    def _waits(self, system: str) -> bool:
        """Whether ``system``'s records must wait for the first full Wix snapshot.

        A PowerOffice record put on Kafka before the Wix contact it matches would make the mapper
        create a second contact (Wix's duplicate rule catches e-mails, nothing catches phones).
        The Wix poller runs first, but a failing Wix cycle (429s, an outage, a crash mid-cycle)
        must not let PowerOffice go ahead: it waits until a Wix cycle has read everything once
        (``since`` is set in the saved cursor, so this holds across restarts too)."""
        if system != "poweroffice" or self.wix_poller is None:
            return False
        if not self.settings.wix_snapshot_first or self.wix_poller.state().since_ns is not None:
            self.metrics.waiting_for_wix.set(0)
            return False
        if not self._told_waiting:
            log.info("PowerOffice extraction waits for the first full Wix snapshot")
            self._told_waiting = True
        self.metrics.waiting_for_wix.set(1)
        return True

    def _poll(
        self, poller: Poller, should_stop: Callable[[], bool], heartbeat: Callable[[], None]
    ) -> int:
        emitted = poller.cycle(should_stop, heartbeat)
        self.metrics.last_poll.labels(poller.system, poller.resource).set(time.time())
        return emitted

    def _failed(self, kind: str, labels: tuple[str, str], exc: BaseException) -> None:
        if kind == "poll":
            self.metrics.poll_errors.labels(*labels, reason_of(exc)).inc()
        log.warning(
            "%s of %s/%s failed: %s",
            kind,
            *labels,
            exc,
            extra={"fields": {"error": reason_of(exc)}},
        )

    # -- the service loop ---------------------------------------------------------------------

    def run(self, runtime: ServiceRuntime) -> None:
        # A start during a broker outage waits for the broker (start is idempotent: provisioning
        # creates only what is missing, cursors and the known set are read again from the top).
        retry_while_unreachable(
            lambda: self.start(runtime.heartbeat), runtime.stopping.is_set, "extractor start-up"
        )
        now = time.monotonic()
        s = self.settings
        tasks: list[_Task] = []
        for poller in self.pollers:
            interval = (
                s.poweroffice_poll_interval_seconds
                if poller.system == "poweroffice"
                else s.wix_poll_interval_seconds
            )

            def poll(p: Poller = poller) -> int:
                return self._poll(p, runtime.stopping.is_set, runtime.heartbeat)

            tasks.append(
                _Task(
                    f"poll {poller.system}/{poller.resource}",
                    interval,
                    now,
                    poll,
                    (poller.system, poller.resource),
                    "poll",
                )
            )
        first_reconcile = now + min(s.reconcile_interval_seconds, 60.0)
        for reconciler in self.reconcilers:
            tasks.append(
                _Task(
                    f"reconcile {reconciler.labels[0]}/{reconciler.labels[1]}",
                    s.reconcile_interval_seconds,
                    first_reconcile,
                    reconciler.run,
                    reconciler.labels,
                    "reconcile",
                )
            )
        while not runtime.stopping.is_set():
            runtime.heartbeat()
            for task in tasks:
                if runtime.stopping.is_set():
                    break
                if time.monotonic() < task.due:
                    continue
                if self._waits(task.labels[0]):
                    task.due = time.monotonic() + 1.0  # the Wix snapshot is not complete yet
                    continue
                started = time.monotonic()
                try:
                    task.action()
                    task.failures = 0
                    task.due = next_due(started, task.interval, time.monotonic())
                except Exception as exc:
                    self._failed(task.kind, task.labels, exc)
                    task.failures += 1
                    backoff = min(task.interval, 2.0 ** min(task.failures, 6))
                    task.due = time.monotonic() + backoff
                runtime.heartbeat()
            soonest = min(task.due for task in tasks)
            runtime.stopping.wait(max(0.05, min(soonest - time.monotonic(), 5.0)))
        log.info("extractor stopping: every cursor covers only acknowledged events")

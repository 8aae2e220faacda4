"""Loader replicas scaled past ``TETHER_REPLICAS`` against the Wix simulator over HTTP: per-process
budgets vs one budget shared through the real PostgreSQL.

Three replicas (each its own ``WixClient``, budget and — shared — database connection, as three
pods have) of four workers write contacts to one site. The Deployment's share is 10 per 2 s and
the site's real limit 12 per 2 s (the rest is another component's). A ``kubectl scale`` that did
not change ``TETHER_REPLICAS`` leaves each pod with the whole share: together three times it,
which the API refuses with 429s. Shared, the three replicas take from one bucket and stay within
the share. The clients are the production ones, unchanged. Counts only; no timing is asserted.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from services.connectors.simkit import ServerThread
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.connectors.wix.simulator import WixSimulator
from services.core.budget import ApiBudget
from services.core.shared_budget import BudgetStore, SharedBudget, credential_key

WINDOW = 2.0
SHARE = 10
REAL_LIMIT = 12
REPLICAS = 3
WORKERS = 4
WRITES_PER_WORKER = 3


@dataclass
class Run:
    calls: int
    throttled: int
    failures: int
    budgets: list[ApiBudget]


@pytest.fixture
def wix() -> Iterator[tuple[WixSimulator, ServerThread]]:
    sim = WixSimulator(rate_limit=REAL_LIMIT, rate_window_seconds=WINDOW)
    with sim.server() as server:
        yield sim, server
    sim.close()


def write_from_replicas(sim: WixSimulator, server: ServerThread, budgets: list[ApiBudget]) -> Run:
    sim.reset()
    clients = [
        WixClient(
            ApiKeyAuth(api_key=SecretStr(sim.api_key), site_id=sim.site_id),
            budget,
            base_url=server.url,
            max_rate_limit_retries=1000,
        )
        for budget in budgets
    ]
    failures: list[BaseException] = []

    def worker(client: WixClient, w: int) -> None:
        for i in range(WRITES_PER_WORKER):
            try:
                client.create_info(
                    {"name": {"first": f"W{w}", "last": f"N{i}"}}, allow_duplicates=True
                )
            except Exception as exc:  # counted: the assertion below names it
                failures.append(exc)

    threads = [
        threading.Thread(target=worker, args=(client, w))
        for client in clients
        for w in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    statuses = [(status, n) for (_m, _op, status), n in sim.counters.items()]
    return Run(
        calls=sum(n for _s, n in statuses),
        throttled=sum(n for s, n in statuses if s == 429),
        failures=len(failures),
        budgets=budgets,
    )


def test_replicas_sharing_a_budget_stay_within_the_share_where_per_process_ones_do_not(
    wix: tuple[WixSimulator, ServerThread], pg_dsn: str
) -> None:
    sim, server = wix
    per_process = write_from_replicas(
        sim, server, [ApiBudget("wix", SHARE, WINDOW) for _ in range(REPLICAS)]
    )
    key = credential_key("wix", f"{sim.site_id}-{uuid.uuid4().hex}")
    stores = [BudgetStore(pg_dsn) for _ in range(REPLICAS)]  # one connection per replica
    try:
        shared = write_from_replicas(
            sim,
            server,
            [
                SharedBudget("wix", SHARE, WINDOW, store=store, credential_key=key, holder="loader")
                for store in stores
            ],
        )
    finally:
        for store in stores:
            store.close()
    writes = REPLICAS * WORKERS * WRITES_PER_WORKER
    print(
        f"per-process: {per_process.throttled}/{per_process.calls} calls were 429; "
        f"shared: {shared.throttled}/{shared.calls}"
    )
    assert per_process.failures == shared.failures == 0
    assert per_process.calls - per_process.throttled == shared.calls - shared.throttled == writes
    assert per_process.throttled >= REPLICAS  # three times the share: the API refuses
    assert shared.throttled * 3 <= per_process.throttled
    assert sum(b.acquired for b in shared.budgets) == shared.calls  # every call took a token

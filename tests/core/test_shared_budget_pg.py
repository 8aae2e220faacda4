"""The shared API budget against the real PostgreSQL: its SQL is the pure rules, its bucket holds
under threads and processes hammering one key, keys are independent, budgets share 429s."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.core.bucket import (
    Bucket,
    BucketShape,
    HoldRule,
    Throttle,
    after_429,
    factor_at,
    factor_rule,
    take,
    window_holds,
)
from services.core.errors import TransportError
from services.core.metrics import BudgetCollector
from services.core.shared_budget import (
    BudgetStore,
    SharedBudget,
    Taken,
    credential_key,
    poweroffice_key,
    shared_budget,
)
from services.extractor import systems
from services.extractor.settings import ExtractorSettings
from services.loader.settings import LoaderSettings

SHAPE = BucketShape.for_window(20, 1.0)
RULE = factor_rule(1.0)
HOLD = HoldRule.for_window(1.0)


@pytest.fixture
def store(pg_dsn: str) -> Iterator[BudgetStore]:
    store = BudgetStore(pg_dsn)
    yield store
    store.close()


def a_key() -> str:
    return credential_key("poweroffice", uuid.uuid4().hex)


def taken(store: BudgetStore, key: str, holder: str, now: float | None = None) -> Taken:
    result = store.take(key, holder, RULE, now=now)
    assert result is not None, "the rows were registered"
    return result


# -- the SQL is the pure rules ---------------------------------------------------------------------

HOLDERS = {"loader": SHAPE, "extractor": BucketShape.for_window(8, 1.0)}

steps = st.lists(
    st.tuples(
        st.sampled_from(["loader", "loader", "extractor", "429"]),  # a take of a holder, or a 429
        st.floats(min_value=-0.05, max_value=2.0),  # a replica's clock may read a little older
        st.one_of(st.none(), st.floats(min_value=0.0, max_value=3.0)),
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps)
def test_every_take_and_429_in_sql_equals_the_pure_rules(
    store: BudgetStore, ops: list[tuple[str, float, float | None]]
) -> None:
    key, now = a_key(), 1000.0
    for holder, shape in HOLDERS.items():
        store.register(key, holder, shape, now=now)
    buckets = {holder: Bucket.full(shape, now) for holder, shape in HOLDERS.items()}
    throttle = Throttle.initial(now)
    for op, gap, retry_after in ops:
        now += gap
        if op in HOLDERS:
            bucket = buckets[op]
            factor = factor_at(RULE, throttle, max(now, bucket.updated_at))
            expected = take(HOLDERS[op], bucket, factor, throttle.blocked_until, now)
            got = taken(store, key, op, now)
            assert got.granted == expected.granted
            assert got.wait_seconds == pytest.approx(expected.wait_seconds, abs=1e-9)
            assert (got.at, got.factor, got.cuts) == (
                pytest.approx(expected.at),
                pytest.approx(factor),
                throttle.aimd.cuts,
            )
            buckets[op] = expected.bucket
        else:
            throttle = after_429(RULE, HOLD, throttle, retry_after, now)
            done = store.throttle(key, RULE, HOLD, retry_after, now=now)
            assert done is not None
            assert done.cuts == throttle.aimd.cuts
            assert done.factor == pytest.approx(throttle.aimd.rate)
            assert done.blocked_until == pytest.approx(throttle.blocked_until)


# -- one key hammered by threads and processes -----------------------------------------------------


def hammer(dsn: str, key: str, threads: int, grants_each: int) -> list[tuple[float, int]]:
    """``threads`` threads of this process, each on its own connection, each take ``grants_each``
    tokens on the database's clock, sleeping the waits they are told; returns (grant time, pid)
    of every grant."""
    granted: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        store = BudgetStore(dsn)
        got = 0
        while got < grants_each:
            take = taken(store, key, "loader")
            if take.granted:
                got += 1
                with lock:
                    granted.append((take.at, os.getpid()))
            else:
                time.sleep(take.wait_seconds)
        store.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return granted


def test_threads_and_processes_never_get_more_than_the_budget_in_any_second(
    pg_dsn: str, store: BudgetStore
) -> None:
    key = a_key()
    store.register(key, "loader", SHAPE)
    processes = multiprocessing.get_context("spawn").Pool(3)
    try:
        remote = processes.starmap_async(hammer, [(pg_dsn, key, 3, 4)] * 3)
        local = hammer(pg_dsn, key, 3, 4)
        grants = local + [grant for batch in remote.get(timeout=120) for grant in batch]
    finally:
        processes.close()
        processes.join()
    times = sorted(at for at, _ in grants)
    assert len(times) == 4 * 12 and len({pid for _, pid in grants}) == 4
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest <= window_holds(SHAPE, 1.0) == 20


def test_two_keys_never_slow_each_other(store: BudgetStore) -> None:
    hammered, quiet, now = a_key(), a_key(), 5000.0
    store.register(hammered, "loader", SHAPE, now=now)
    store.register(quiet, "loader", SHAPE, now=now)
    for _ in range(10):  # exhausted, held and cut
        taken(store, hammered, "loader", now)
    store.throttle(hammered, RULE, HOLD, 30.0, now=now)
    assert not taken(store, hammered, "loader", now).granted
    other = taken(store, quiet, "loader", now)
    assert other.granted and other.factor == 1.0 and other.cuts == 0


def test_holders_of_one_credential_have_their_own_buckets_but_share_the_hold(
    store: BudgetStore,
) -> None:
    key, now = a_key(), 7000.0
    assert store.take(key, "loader", RULE, now=now) is None  # nothing before it is registered
    store.register(key, "loader", SHAPE, now=now)
    store.register(key, "extractor", SHAPE, now=now)
    assert taken(store, key, "loader", now).granted
    assert taken(store, key, "extractor", now).granted  # its own token
    store.throttle(key, RULE, HOLD, 2.0, now=now)  # the loader met a 429
    held = taken(store, key, "extractor", now + 1.0)
    assert not held.granted and held.wait_seconds == pytest.approx(1.0)
    assert held.factor == pytest.approx(0.5 + RULE.increase_per_second * 1.0) and held.cuts == 1


# -- SharedBudget: the interface the clients use ---------------------------------------------------


def test_a_429_in_one_process_holds_the_other_until_its_retry_after(
    pg_dsn: str, store: BudgetStore
) -> None:
    key = a_key()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    first = SharedBudget("wix", 100, 1.0, store=store, credential_key=key, holder="loader")
    other_replica = BudgetStore(pg_dsn)
    second = SharedBudget(
        "wix", 100, 1.0, store=other_replica, credential_key=key, holder="loader", sleep=sleep
    )
    try:
        first.acquire()
        first.note_throttled(0.3)
        second.acquire()
        assert sum(slept) > 0.2  # told to wait out (most of) the other replica's Retry-After
        with psycopg.connect(pg_dsn) as conn:
            (blocked_until, granted_at) = conn.execute(
                "SELECT c.blocked_until, b.updated_at FROM tether_api_credentials c"
                " JOIN tether_api_buckets b USING (credential_key) WHERE credential_key = %s",
                (key,),
            ).fetchone() or (None, None)
        assert granted_at is not None and blocked_until is not None
        assert granted_at >= blocked_until
        assert second.cuts == first.cuts == 1 and first.throttled_by_api == 1
        assert second.effective_rate_per_second < second.rate_per_second
    finally:
        other_replica.close()


def test_the_metrics_name_the_credential_by_its_key_never_the_secret(
    pg_dsn: str, store: BudgetStore
) -> None:
    secret = "sub-key-" + uuid.uuid4().hex
    settings = LoaderSettings(
        poweroffice_subscription_key=secret, shared_budgets=True, postgres_dsn=pg_dsn
    )
    budget = shared_budget(
        store, "poweroffice", 5.0, 1.0, key=poweroffice_key(settings), holder="loader"
    )
    budget.acquire()
    registry = CollectorRegistry()
    registry.register(BudgetCollector([budget]))
    labels = {
        value
        for metric in registry.collect()
        for sample in metric.samples
        for value in sample.labels.values()
    }
    assert poweroffice_key(settings) in labels
    assert not any(secret in value for value in labels)
    assert registry.get_sample_value("tether_api_budget_permits_total", {"budget": "poweroffice"})


def test_the_services_take_the_whole_share_from_postgres_when_opted_in(pg_dsn: str) -> None:
    common = {"poweroffice_subscription_key": "k", "wix_site_id": "site-1", "postgres_dsn": pg_dsn}
    loader = LoaderSettings(shared_budgets=True, replicas=3, **common)
    shared = loader.poweroffice_budget()
    assert isinstance(shared, SharedBudget) and shared.holder == "loader"
    assert shared.rate_per_second == 5.0  # 10/s x 0.5, not divided by the 3 replicas
    assert shared.credential == credential_key("poweroffice", "k")
    wix = loader.wix_budget()
    assert isinstance(wix, SharedBudget) and wix.credential == credential_key("wix", "site-1")
    extractor = systems.budgets(ExtractorSettings(shared_budgets=True, **common))
    assert {b.credential for b in extractor.values()} == {shared.credential, wix.credential}
    assert not isinstance(LoaderSettings(**common).poweroffice_budget(), SharedBudget)  # default


def test_a_pool_gives_the_extractor_and_the_loader_one_bucket_of_the_whole_limit(
    pg_dsn: str,
) -> None:
    common = {
        "poweroffice_subscription_key": "k-pool",
        "wix_site_id": "site-pool",
        "postgres_dsn": pg_dsn,
        "shared_budgets": True,
        "shared_budget_pool": "tether",
        "wix_budget_share": 1.0,
    }
    loader = LoaderSettings(**common).wix_budget()
    extractor = systems.budgets(ExtractorSettings(**common))["wix"]
    assert isinstance(loader, SharedBudget) and isinstance(extractor, SharedBudget)
    assert loader.holder == extractor.holder == "tether"
    assert loader.credential == extractor.credential
    assert loader.rate_per_second == pytest.approx(200 / 60)  # the whole 200/min
    # one bucket, burst 1: right after the loader's token, the extractor has to wait for the next
    loader.acquire()
    after = taken(loader.store, extractor.credential_key, extractor.holder)
    assert not after.granted and after.wait_seconds > 0


def test_postgres_unreachable_is_a_retriable_transport_error_at_the_first_take() -> None:
    store = BudgetStore("postgresql://tether@127.0.0.1:9/none", connect_timeout=1)
    budget = SharedBudget("wix", 100, 60.0, store=store, credential_key=a_key(), holder="loader")
    with pytest.raises(TransportError) as raised:
        budget.acquire()  # building it needed no database; taking from it does
    assert raised.value.retriable


def test_a_dropped_connection_fails_one_take_and_the_next_reconnects(
    pg_dsn: str, store: BudgetStore
) -> None:
    key = a_key()
    store.register(key, "loader", SHAPE)
    assert taken(store, key, "loader").granted
    with psycopg.connect(pg_dsn, autocommit=True) as admin:  # as a PostgreSQL restart would
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(TransportError):
        store.take(key, "loader", RULE)
    assert taken(store, key, "loader") is not None  # reconnected; the rows are still there

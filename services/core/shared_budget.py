"""API budgets shared by every replica through PostgreSQL (opt-in: ``TETHER_SHARED_BUDGETS``).

Without it each process takes ``share / replicas`` of an API's limit and learns from its own
429s (``ApiBudget``). With it, every process that uses one credential for one purpose (the
*holder*: ``extractor``, ``loader``) takes its tokens from one bucket row, whatever the number of
replicas, and every holder of that credential sees the same 429 hold and rate factor:

- ``tether_api_credentials``: one row per credential key — a non-reversible id of the credential
  (``credential_key``: a short sha256 of the PowerOffice subscription key or of the Wix
  instance/site id), never the credential — with the rate factor (AIMD state), the cuts, the
  hold (``blocked_until``) and the default back-off of the last 429 without ``Retry-After``.
- ``tether_api_buckets``: one row per (credential key, holder): the token bucket (rate, burst,
  tokens, updated_at) of that holder's share of the credential's limit.

Taking a token is one SQL statement (``TAKE``): it locks the bucket row, refills it at the
holder's rate times the credential's factor, grants or says how long to wait, and writes the
bucket back, so no two processes can take the same token. A 429 is one statement too
(``THROTTLE``). Both compute with the database's clock (one clock for every host) and are the
rules of ``services.core.bucket`` in SQL; the tests run both on the same sequences.

The tables are created here, idempotently, when a process first connects (under an advisory
lock, so replicas starting together do not race): they are soft state that the extractor and
the loader own together (not the mapper's, whose migrations are its own), and losing them loses
only what was learned from 429s. PostgreSQL unreachable: ``acquire`` raises a retriable
``TransportError`` (the callers retry as for an API outage) and the next call reconnects.

``SharedBudget`` is an ``ApiBudget`` (the clients are unchanged): ``acquire``,
``note_throttled``, the counters and rates ``BudgetCollector`` exports.

Imports: standard library, psycopg and ``services.core.budget``/``bucket``/``errors``/``settings``.
psycopg is imported by the store's methods, when a process first uses a shared budget: loading
it (libpq, its TLS library) costs a process ~20 MiB, which one without shared budgets (the
default) does not carry.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from services.core.bucket import BucketShape, HoldRule, factor_rule
from services.core.budget import AimdRule, ApiBudget, budget_shape
from services.core.errors import TransportError
from services.core.settings import PowerOfficeSettings, WixSettings

if TYPE_CHECKING:
    import psycopg

#: The database's clock in epoch seconds, unless a test passes ``now``.
_NOW = "COALESCE(%(now)s::float8, extract(epoch FROM clock_timestamp())::float8)"

CREATE_TABLES = """
CREATE TABLE IF NOT EXISTS tether_api_credentials (
    credential_key text PRIMARY KEY,
    factor double precision NOT NULL DEFAULT 1,
    factor_at double precision NOT NULL,
    cut_at double precision,
    cuts bigint NOT NULL DEFAULT 0,
    blocked_until double precision NOT NULL DEFAULT 0,
    backoff_seconds double precision NOT NULL DEFAULT 0,
    throttled bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tether_api_buckets (
    credential_key text NOT NULL
        REFERENCES tether_api_credentials (credential_key) ON DELETE CASCADE,
    holder text NOT NULL,
    rate double precision NOT NULL,
    burst double precision NOT NULL,
    tokens double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (credential_key, holder)
);
"""

#: Serialises the CREATE TABLEs of replicas starting together (any fixed 64-bit number).
_CREATE_LOCK = 0x7465746865726275  # "tetherbu"

REGISTER_CREDENTIAL = f"""
INSERT INTO tether_api_credentials (credential_key, factor_at) VALUES (%(key)s, {_NOW})
ON CONFLICT (credential_key) DO NOTHING
"""

# A changed share takes effect at the next start of any replica (the last one to start wins).
REGISTER_BUCKET = f"""
INSERT INTO tether_api_buckets (credential_key, holder, rate, burst, tokens, updated_at)
VALUES (%(key)s, %(holder)s, %(rate)s, %(burst)s, %(burst)s, {_NOW})
ON CONFLICT (credential_key, holder) DO UPDATE
SET rate = EXCLUDED.rate, burst = EXCLUDED.burst,
    tokens = LEAST(tether_api_buckets.tokens, EXCLUDED.burst)
"""

# services.core.bucket.take with the factor of factor_at, in one statement. The bucket row is
# locked first (FOR UPDATE) and every value is computed from the locked row, so a take that
# waited for another's lock counts from that one's update (``at``: time never runs backwards).
# The credential's row is read, not locked (every holder reads it on every take): as of the
# statement's start, so a 429 committed while this take waited for the lock holds the next one.
TAKE = f"""
WITH clock AS MATERIALIZED (SELECT {_NOW} AS now),
bucket AS (
    SELECT b.rate, b.burst, b.tokens, b.updated_at, clock.now,
           GREATEST(clock.now, b.updated_at) AS at
    FROM tether_api_buckets b CROSS JOIN clock
    WHERE b.credential_key = %(key)s AND b.holder = %(holder)s
    FOR UPDATE OF b
),
shared AS (
    SELECT bucket.*, c.blocked_until, c.cuts,
           LEAST(%(ceiling)s::float8,
                 c.factor + GREATEST(0, bucket.at - c.factor_at) * %(increase)s::float8) AS factor
    FROM bucket CROSS JOIN tether_api_credentials c
    WHERE c.credential_key = %(key)s
),
refilled AS (
    SELECT shared.*,
           LEAST(burst, tokens + (at - updated_at) * (rate * factor)) AS refilled,
           at >= blocked_until AND LEAST(burst, tokens + (at - updated_at) * (rate * factor)) >= 1
               AS granted
    FROM shared
)
UPDATE tether_api_buckets b
SET tokens = CASE WHEN r.granted THEN r.refilled - 1 ELSE r.refilled END, updated_at = r.at
FROM refilled r
WHERE b.credential_key = %(key)s AND b.holder = %(holder)s
RETURNING r.granted,
    CASE WHEN r.at < r.blocked_until THEN r.blocked_until - r.now
         WHEN r.granted THEN 0
         ELSE (r.at - r.now) + (1 - r.refilled) / (r.rate * r.factor) END,
    r.at, r.factor, r.cuts
"""

# services.core.bucket.after_429 in one statement: the factor cut (once per burst), the hold.
THROTTLE = f"""
WITH clock AS MATERIALIZED (SELECT {_NOW} AS now),
locked AS (
    SELECT c.*, GREATEST(clock.now, c.factor_at) AS at
    FROM tether_api_credentials c CROSS JOIN clock
    WHERE c.credential_key = %(key)s
    FOR UPDATE OF c
),
judged AS (
    SELECT locked.*,
           LEAST(%(ceiling)s::float8,
                 factor + GREATEST(0, at - factor_at) * %(increase)s::float8) AS effective,
           (cut_at IS NOT NULL AND at - cut_at < %(cooldown)s::float8) AS same_burst,
           at < blocked_until AS held,
           CASE WHEN backoff_seconds > 0 AND at < blocked_until + backoff_seconds
                    THEN LEAST(%(cap)s::float8, backoff_seconds * 2)
                WHEN %(told)s::float8 > 0 THEN %(told)s::float8
                ELSE %(base)s::float8 END AS next_backoff
    FROM locked
)
UPDATE tether_api_credentials c
SET factor = CASE WHEN j.same_burst THEN j.effective
                  ELSE GREATEST(%(floor)s::float8, j.effective * %(decrease)s::float8) END,
    factor_at = j.at,
    cut_at = CASE WHEN j.same_burst THEN j.cut_at ELSE j.at END,
    cuts = j.cuts + CASE WHEN j.same_burst THEN 0 ELSE 1 END,
    blocked_until = CASE WHEN j.held THEN GREATEST(j.blocked_until, j.at + %(told)s::float8)
                         ELSE j.at + GREATEST(%(told)s::float8, j.next_backoff) END,
    backoff_seconds = CASE WHEN j.held THEN j.backoff_seconds ELSE j.next_backoff END,
    throttled = j.throttled + 1
FROM judged j
WHERE c.credential_key = %(key)s
RETURNING c.factor, c.cuts, c.blocked_until
"""


def credential_key(system: str, credential: str) -> str:
    """A non-reversible, stable id of a credential (or of the id an API's limit is counted on):
    safe as a row key, a log field and a metric label; the same for every process using it."""
    return f"{system}-{hashlib.sha256(credential.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Taken:
    granted: bool
    wait_seconds: float
    at: float  # the database time the take counted at
    factor: float  # the credential's rate factor then
    cuts: int


@dataclass(frozen=True)
class Throttled:
    factor: float
    cuts: int
    blocked_until: float


class BudgetStore:
    """A process's connection to the shared budgets (one per DSN: ``for_dsn``), thread-safe.

    ``now`` (epoch seconds) replaces the database's clock: for tests only.
    """

    _by_dsn: dict[str, BudgetStore] = {}
    _by_dsn_lock = threading.Lock()

    def __init__(self, dsn: str, *, connect_timeout: int = 5) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_dsn(cls, dsn: str) -> BudgetStore:
        """The process's store for ``dsn`` (every budget of a process shares one connection)."""
        with cls._by_dsn_lock:
            store = cls._by_dsn.get(dsn)
            if store is None:
                store = cls._by_dsn[dsn] = cls(dsn)
            return store

    def register(
        self, key: str, holder: str, shape: BucketShape, *, now: float | None = None
    ) -> None:
        """Make the credential's and the holder's rows exist (a full bucket when new)."""
        import psycopg  # here, not at the top: see the module docstring

        params = {"key": key, "holder": holder, "rate": shape.rate, "burst": shape.burst}
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute(REGISTER_CREDENTIAL, {"key": key, "now": now})
                    conn.execute(REGISTER_BUCKET, {**params, "now": now})
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop(exc)

    def take(
        self, key: str, holder: str, rule: AimdRule, *, now: float | None = None
    ) -> Taken | None:
        """One take (``TAKE``); ``None`` when the rows do not exist (``register`` first)."""
        row = self._one(
            TAKE,
            {
                "key": key,
                "holder": holder,
                "ceiling": rule.ceiling,
                "increase": rule.increase_per_second,
                "now": now,
            },
        )
        if row is None:
            return None
        granted, wait, at, factor, cuts = row
        return Taken(bool(granted), float(wait), float(at), float(factor), int(cuts))

    def throttle(
        self,
        key: str,
        rule: AimdRule,
        hold: HoldRule,
        retry_after: float | None,
        *,
        now: float | None = None,
    ) -> Throttled | None:
        """One 429 (``THROTTLE``); ``None`` when the credential's row does not exist."""
        row = self._one(
            THROTTLE,
            {
                "key": key,
                "ceiling": rule.ceiling,
                "floor": rule.floor,
                "decrease": rule.decrease,
                "increase": rule.increase_per_second,
                "cooldown": rule.cooldown_seconds,
                "told": retry_after if retry_after is not None and retry_after > 0 else 0.0,
                "base": hold.base,
                "cap": hold.cap,
                "now": now,
            },
        )
        if row is None:
            return None
        factor, cuts, blocked_until = row
        return Throttled(float(factor), int(cuts), float(blocked_until))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _one(self, query: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        import psycopg  # here, not at the top: see the module docstring

        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(query, params).fetchone()
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop(exc)

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection, (re)connecting and creating the tables when there is none."""
        import psycopg  # here, not at the top: see the module docstring

        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.OperationalError as exc:
            raise TransportError("shared API budget: PostgreSQL unreachable") from exc
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                conn.execute(CREATE_TABLES)
        except psycopg.OperationalError as exc:
            conn.close()
            raise TransportError("shared API budget: PostgreSQL unreachable") from exc
        self._conn = conn
        return conn

    def _drop(self, exc: psycopg.Error) -> NoReturn:
        """Forget a broken connection (the next call reconnects) and raise the retriable error."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        raise TransportError("shared API budget: PostgreSQL unreachable") from exc


@dataclass
class SharedBudget(ApiBudget):
    """An ``ApiBudget`` whose tokens, 429 hold and rate factor live in PostgreSQL, shared by
    every process that builds it with the same ``credential_key`` and ``holder``.

    Its rows are made by its first take (building one needs no database: a service starts while
    PostgreSQL is down, and rows deleted meanwhile come back); a changed share reaches the row
    when a process registers it, that is at the first take after a start.

    ``requests`` per ``per_seconds`` is the holder's whole share (not divided by replicas),
    spaced evenly (``BucketShape.for_window``); always adaptive.
    """

    store: BudgetStore = field(kw_only=True, repr=False)
    credential_key: str = field(kw_only=True)
    holder: str = field(kw_only=True)
    _factor: float = field(default=1.0, init=False, repr=False)
    _cuts: int = field(default=0, init=False, repr=False)
    _hold: HoldRule = field(init=False, repr=False)
    _shape: BucketShape = field(init=False, repr=False)
    _turn: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.requests <= 0 or not self.adaptive:
            raise ValueError("a shared budget is limited and adaptive")
        self._rule = factor_rule(self.per_seconds)
        self._hold = HoldRule.for_window(self.per_seconds)
        self._shape = BucketShape.for_window(self.requests, self.per_seconds)

    @property
    def limited(self) -> bool:
        return True

    @property
    def credential(self) -> str | None:
        return self.credential_key

    @property
    def effective_rate_per_second(self) -> float:
        """The share times the credential's factor as of this process's last take or 429."""
        return self.rate_per_second * self._factor

    @property
    def cuts(self) -> int:
        """How many times 429s (any holder's, any replica's) lowered the credential's rate."""
        return self._cuts

    def acquire(self) -> float:
        started = self.clock()
        # One thread of this process at a time asks the database (the others queue here), so a
        # token costs about one statement per waiting process, not one per waiting thread.
        with self._turn:
            self._take()
        waited = self.clock() - started
        with self._lock:
            self.acquired += 1
            self.waited_seconds += waited
        return waited

    def _take(self) -> None:
        """Take one token, sleeping the waits the database names."""
        assert self._rule is not None  # set by __post_init__
        while True:
            taken = self.store.take(self.credential_key, self.holder, self._rule)
            if taken is None:  # the first take of this holder anywhere (or its rows were deleted)
                self.store.register(self.credential_key, self.holder, self._shape)
                continue
            self._factor, self._cuts = taken.factor, taken.cuts
            if taken.granted:
                return
            self.sleep(taken.wait_seconds)

    def note_throttled(self, retry_after: float | None = None) -> None:
        """A 429: counted here; every holder of the credential, in every replica, is held and
        slowed (``THROTTLE``)."""
        assert self._rule is not None  # set by __post_init__
        with self._lock:
            self.throttled_by_api += 1
        done = self.store.throttle(self.credential_key, self._rule, self._hold, retry_after)
        if done is None:  # no take of this credential has registered it yet
            self.store.register(self.credential_key, self.holder, self._shape)
            done = self.store.throttle(self.credential_key, self._rule, self._hold, retry_after)
            assert done is not None  # just registered
        self._factor, self._cuts = done.factor, done.cuts


def shared_budget(
    store: BudgetStore,
    name: str,
    rate_per_window: float,
    window_seconds: float,
    *,
    key: str,
    holder: str,
) -> ApiBudget:
    """``rate_per_window`` per window for ``holder`` of the credential ``key``, shared by every
    replica; a lifted rate (``<= 0``) stays a local, unlimited budget."""
    requests, per_seconds = budget_shape(rate_per_window, window_seconds)
    if requests <= 0:
        return ApiBudget(name, 0)
    return SharedBudget(name, requests, per_seconds, store=store, credential_key=key, holder=holder)


def poweroffice_key(settings: PowerOfficeSettings) -> str:
    """PowerOffice counts its limit per subscription key (whatever the client keys using it)."""
    return credential_key("poweroffice", settings.poweroffice_subscription_key.get_secret_value())


def wix_key(settings: WixSettings) -> str:
    """Wix counts its limit per app instance (an API key: per site)."""
    return credential_key("wix", settings.wix_instance_id or settings.wix_site_id)

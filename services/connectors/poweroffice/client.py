"""Production client of the PowerOffice Go v2 API (Employees, Customers, ContactPersons).

Follows ``shared/reference/poweroffice-go-v2.md`` and works unchanged against the real API: it
uses no simulator-only endpoint. Decisions on the reference's open points are in
``docs/poweroffice-decisions.md``. What it does:

- **Auth**: client-credentials token (``Basic base64(appKey:clientKey)`` +
  ``Ocp-Apim-Subscription-Key``), renewed *proactively* once ``1 - renew_fraction`` of its
  lifetime has passed, at most ``renew_cap_seconds`` before expiry (``services.core.tokens``),
  plus one re-authentication when a call still gets 401.
- **Budget**: every HTTP request (token calls and retries included) first takes one permit from
  the injected ``ApiBudget`` and is then paced so that the gateway, which counts arrivals, sees
  the same rate (``_Pacer``); a 429 that gets through anyway is counted on the budget and waited
  out (``Retry-After`` header, else "Try again in N seconds" in the body, else 1 s) and retried —
  for every method, because the gateway rejected the request before the API saw it.
- **Retries** (tenacity, capped exponential backoff with full jitter): 5xx, timeouts and
  transport errors only for idempotent calls — GET, DELETE and PATCH with ``test`` guards.
- **Creates are never blindly retried**: each carries a reference (``ExternalImportReference``
  for customers/employees, ``ExternalCode`` for contact persons) that the API keeps unique. The
  client looks the reference up before POST and again after a 400 or an unknown outcome (5xx,
  timeout, dropped connection); a found record is returned (``CreateResult.created`` says whether
  this call made it). A repeated POST is only sent after such a lookup found nothing, and cannot
  duplicate because the API rejects a second record with the same reference. Reads may lag
  writes, so after a 400 that names the reference (or says "in use") the lookup is repeated
  with back-off before the 400 is believed.
- **Guarded patches**: ``update`` builds RFC 6902 operations from ``{property: new_value}``
  with ``test`` operations first from ``{property: expected_current_value}``. A refused guarded
  patch (409, or a 400 — the v2 OpenAPI documents only 400 for PATCH) is never taken as final,
  because reads may lag the writes (a replica; the API promises no read-your-writes): the record
  is re-read with back-off (``RetryPolicy.max_guard_reads``) until a read explains the refusal —
  desired values there -> returned; a guard no longer holds -> ``GuardFailedError`` (a
  ``ConflictError``, ``error_code="test_failed"``) carrying that fresh record. A 400 whose
  problem text does not name a ``test`` is first checked with a test-only patch (evaluated on the
  primary): it passes -> the 400 was about the values and is re-raised. Reads that never catch up
  within the bound -> ``GuardFailedError`` with ``data["unconfirmed"]`` and the last read.
- **Resources** (``client.resource(name)`` -> ``ResourceAccessor``): one accessor serves
  employees, customers and contact persons; what differs between them — collection path,
  reference property and filter, and whether records live under a parent customer
  (``/ContactPersons/{contactId}/{id}``) — is data (``RESOURCE_RULES``), not code.
- **Paging**: ``PageNumber``/``PageSize`` until an empty page or 204 — never "until a short
  page": a server may return fewer records than ``PageSize`` asked for. Incremental reads
  (``changed_since``) page by keyset on ``LastChangedDateTimeOffset`` so that records edited
  during the scan cannot be skipped.
- **Errors** become ``services.core.errors`` types (``raise ... from exc``) with
  ``system="poweroffice"``. Messages and logs carry operation names, ids and statuses only —
  never keys, tokens, e-mail addresses or phone numbers (problem details are scrubbed).
- **Metrics hook**: ``on_request(system, operation, status, seconds)`` after every HTTP exchange
  (``status`` 0 when no response arrived); operations are low-cardinality names such as
  ``customers.list`` or ``token``.

Imports: standard library, httpx, pydantic, tenacity, ``services.core`` and ``models``. Never the
simulator, never prometheus.
"""

from __future__ import annotations

import base64
import collections
import email.utils
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Generic, Literal, Protocol, overload

import httpx
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

from services.connectors.poweroffice.models import (
    REFERENCE_FIELD,
    ContactPerson,
    Customer,
    Employee,
    RecordT,
    Resource,
    format_timestamp,
    parse_record,
    parse_timestamp,
)
from services.core.budget import ApiBudget
from services.core.errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    ContractError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TetherError,
    TransportError,
    ValidationError,
)
from services.core.settings import PowerOfficeSettings
from services.core.tokens import DEFAULT_CAP_SECONDS, DEFAULT_FRACTION, renew_at

SYSTEM: Final = "poweroffice"
PRODUCTION_BASE_URL: Final = "https://goapi.poweroffice.net/v2"
PRODUCTION_TOKEN_URL: Final = "https://goapi.poweroffice.net/OAuth/Token"
DEMO_BASE_URL: Final = "https://goapi.poweroffice.net/Demo/v2"
DEMO_TOKEN_URL: Final = "https://goapi.poweroffice.net/Demo/OAuth/Token"
DEFAULT_PAGE_SIZE: Final = 5000
_API_VERSION_SUFFIX: Final = re.compile(r"/v2/?$", re.IGNORECASE)


def missing_credentials(settings: PowerOfficeSettings) -> list[str]:
    """The PowerOffice keys the settings lack (all three are needed: application, client,
    subscription)."""
    names = {
        "TETHER_POWEROFFICE_APP_KEY": settings.poweroffice_app_key,
        "TETHER_POWEROFFICE_CLIENT_KEY": settings.poweroffice_client_key,
        "TETHER_POWEROFFICE_SUBSCRIPTION_KEY": settings.poweroffice_subscription_key,
    }
    return [name for name, value in names.items() if not value.get_secret_value()]


def require_credentials(settings: PowerOfficeSettings) -> None:
    """Refuse to build a client without all three keys, naming the missing ones."""
    missing = missing_credentials(settings)
    if missing:
        raise ConfigurationError("PowerOffice credentials missing: " + ", ".join(missing))


def token_url_for(base_url: str) -> str:
    """The token endpoint beside an API base URL: ``<root>/v2`` -> ``<root>/OAuth/Token``.

    Production ``https://goapi.poweroffice.net/v2`` -> ``.../OAuth/Token``; the demo
    ``https://goapi.poweroffice.net/Demo/v2`` -> ``.../Demo/OAuth/Token`` (reference §1). A base
    URL without the ``/v2`` suffix is not guessed at: the token URL must then be set.
    """
    root, count = _API_VERSION_SUFFIX.subn("", base_url.strip())
    if not count:
        raise ConfigurationError(
            f"cannot derive the PowerOffice token URL from the base URL {base_url!r} (it does "
            "not end in /v2): set TETHER_POWEROFFICE_TOKEN_URL"
        )
    return f"{root}/OAuth/Token"


MAX_PAGE_SIZE: Final = 20_000
MAX_REFERENCE_LENGTH: Final = 50

_CHANGED_ORDER: Final = "LastChangedDateTimeOffset asc, Id asc"
_TICK: Final = timedelta(microseconds=1)

log = logging.getLogger(__name__)


class RequestObserver(Protocol):
    """Called after every HTTP exchange; must not raise (exceptions are logged and dropped)."""

    def __call__(self, system: str, operation: str, status: int, seconds: float) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client retries. Waits are in seconds."""

    max_attempts: int = 5
    max_rate_limited_attempts: int = 10
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0
    max_create_posts: int = 3
    #: Reads of a record after a refused guarded patch, until one explains the refusal
    #: (back-off ``guard_read_backoff`` doubling up to ``guard_read_max_backoff``: with the
    #: defaults the reads span ~6 s, well past the ~1 s a read replica lags).
    max_guard_reads: int = 6
    guard_read_backoff: float = 0.25
    guard_read_max_backoff: float = 2.0


class GuardFailedError(ConflictError):
    """A guarded patch was refused because the record changed since the caller read it.

    ``current`` is the record as last read (wire dict), which no longer satisfies the guards —
    unless ``data["unconfirmed"]`` is true: then the reads never caught up with the write that
    broke the guard within ``RetryPolicy.max_guard_reads``, and ``current`` is the last (stale)
    read. ``data["properties"]`` names the guards that no longer hold. Never a permanent refusal:
    the caller re-merges against the fresh state and tries again.
    """

    def __init__(self, message: str, *, current: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.current = current


@dataclass(frozen=True)
class CreateResult(Generic[RecordT]):
    """A record after ``ResourceAccessor.create``; ``created`` is False when one with the
    reference existed."""

    record: RecordT
    created: bool


@dataclass(frozen=True)
class UpdateResult(Generic[RecordT]):
    """A record after ``ResourceAccessor.update``; ``written`` is False when the API refused the
    patch and a read showed the record already held the changes (nothing was written)."""

    record: RecordT
    written: bool


@dataclass
class _CallState:
    attempts: int = 0
    reauthenticated: bool = False


class _Pacer:
    """Keeps this client's request *arrivals* within the budget's window, as the gateway counts.

    ``ApiBudget`` counts permits when they are taken; the gateway counts requests when they
    arrive. Latency jitter (and the limiter's millisecond rounding) can put ``requests + 1``
    arrivals inside one window although the permits were spaced correctly, and each such 429
    costs a whole ``Retry-After``. The pacer waits, after ``acquire()``, until the request
    ``requests`` sends ago has *completed* at least ``per_seconds`` ago: its arrival was no later
    than its completion, so the gateway cannot see too many. It costs about one round trip per
    window; with an unlimited budget it does nothing.
    """

    def __init__(self, budget: ApiBudget) -> None:
        self._window = budget.per_seconds
        self._done: collections.deque[float] = collections.deque(
            maxlen=budget.requests if budget.limited else 0
        )
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self._done.maxlen == 0:
            return
        while True:
            with self._lock:
                full = len(self._done) == self._done.maxlen
                delay = self._done[0] + self._window - time.monotonic() if full else 0.0
            if delay <= 0:
                return
            time.sleep(delay)

    def done(self) -> None:
        if self._done.maxlen:
            with self._lock:
                self._done.append(time.monotonic())


@dataclass
class _Token:
    value: SecretStr
    renew_at: float  # client clock


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def build_patch(
    changes: Mapping[str, Any], expected: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """RFC 6902 operations: ``test`` for each expected value first, then ``replace`` per change.

    Keys are PascalCase property names. A mapping value (``MailAddress``) becomes one operation
    per sub-property (``/MailAddress/City``), as the API recommends.
    """
    ops: list[dict[str, Any]] = []
    for kind, values in (("test", expected or {}), ("replace", changes)):
        for name, value in values.items():
            if isinstance(value, Mapping):
                for sub, item in value.items():
                    ops.append(
                        {"op": kind, "path": _pointer(name, str(sub)), "value": _jsonable(item)}
                    )
            else:
                ops.append({"op": kind, "path": _pointer(name), "value": _jsonable(value)})
    return ops


_TEST_WORD_RE = re.compile(r"(?i)\btest\b")


def names_failed_test(error: ApiError) -> bool:
    """Whether a refused PATCH's problem details say a ``test`` operation failed.

    The v2 OpenAPI documents only a 400 ProblemDetails for PATCH and no wording for a failed
    ``test``; ASP.NET's JSON Patch says "The current value ... is not equal to the test value
    ...", our simulator "The test operation at path ... failed". Both name the operation, so a
    title or detail containing the word ``test`` counts. Anything else is *not* taken as proof
    either way (see ``ResourceAccessor._update``).
    """
    detail = error.data.get("detail")
    texts = [error.error_code or "", detail if isinstance(detail, str) else ""]
    return any(_TEST_WORD_RE.search(text) for text in texts)


def names_reference_in_use(error: ApiError, field_name: str) -> bool:
    """Whether a refused POST's problem details point at a uniqueness clash: they name the
    reference property (``ExternalImportReference``/``ExternalCode``) or say "in use" / "already
    exists" (the simulator: "ExternalImportReference is already in use. …"; the real wording is
    not documented). Only then is the reference looked up again with back-off."""
    detail = error.data.get("detail")
    text = " ".join([error.error_code or "", detail if isinstance(detail, str) else ""]).lower()
    return field_name.lower() in text or "in use" in text or "already exists" in text


def _holds(record: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    """Names of properties in ``values`` that ``record`` does NOT currently have."""
    wrong: list[str] = []
    for name, value in values.items():
        current = record.get(name)
        if isinstance(value, Mapping):
            current_map = current if isinstance(current, Mapping) else {}
            wrong.extend(
                f"{name}.{sub}"
                for sub, item in value.items()
                if current_map.get(str(sub)) != _jsonable(item)
            )
        elif current != _jsonable(value):
            wrong.append(name)
    return wrong


_EMAIL_RE = re.compile(r"[^\s@'\"]+@[^\s@'\"]+")
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
_ID_RE = re.compile(r"(?i)\b(id\s*=\s*)(\d+)")
_NUMBER_RE = re.compile(r"\+?\d[\d \-]{3,}\d")


def scrub(text: str, limit: int = 300) -> str:
    """Remove what may be personal data from an API message: quoted values, e-mail addresses,
    phone-like digit runs (``Id = 123`` is kept)."""
    text = _QUOTED_RE.sub("'<value>'", text)
    text = _EMAIL_RE.sub("<email>", text)
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(2))
        return f"{match.group(1)}\x00{len(kept) - 1}\x00"

    text = _ID_RE.sub(keep, text)
    text = _NUMBER_RE.sub("<number>", text)
    text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return text[:limit]


def _problem(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    """(title, scrubbed detail, machine code) from ProblemDetails in either casing, an OAuth
    error body or a gateway ``{statusCode, message}`` body."""
    try:
        body = response.json()
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    lowered = {str(k).lower(): v for k, v in body.items()}

    def text(key: str) -> str | None:
        value = lowered.get(key)
        return value if isinstance(value, str) and value else None

    oauth = text("error")
    title = text("title") or oauth
    detail = text("detail") or text("error_description") or text("message")
    return (
        scrub(title, 120) if title else None,
        scrub(detail) if detail else None,
        oauth or title,
    )


def _retry_after(response: httpx.Response, cap: float) -> float:
    header = response.headers.get("retry-after")
    if header:
        try:
            return min(max(float(header), 0.0), cap)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
                return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), cap)
            except (TypeError, ValueError):
                pass
    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    match = re.search(r"(\d+(?:\.\d+)?)\s*seconds?", message)
    if match:
        return min(float(match.group(1)), cap)
    return min(1.0, cap)


class PowerOfficeClient:
    """Synchronous PowerOffice Go v2 client; thread-safe; use as a context manager or ``close()``.

    ``transport`` (an ``httpx.BaseTransport``), ``clock`` (monotonic seconds) and ``sleep`` are
    injectable for tests.
    """

    def __init__(
        self,
        *,
        application_key: SecretStr,
        client_key: SecretStr,
        subscription_key: SecretStr,
        budget: ApiBudget,
        base_url: str = PRODUCTION_BASE_URL,
        token_url: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        renew_fraction: float = DEFAULT_FRACTION,
        renew_cap_seconds: float = DEFAULT_CAP_SECONDS,
        retry: RetryPolicy | None = None,
        on_request: RequestObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "tether-poweroffice/0.1",
    ) -> None:
        self._application_key = application_key
        self._client_key = client_key
        self._subscription_key = subscription_key
        self.budget = budget
        self.base_url = base_url.rstrip("/")
        # Unset: beside the base URL (demo base -> demo token endpoint).
        self.token_url = token_url or token_url_for(self.base_url)
        self.renew_fraction = renew_fraction
        self.renew_cap_seconds = renew_cap_seconds
        self.retry = retry or RetryPolicy()
        self._on_request = on_request
        self._clock = clock
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )
        self._pacer = _Pacer(budget)
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self.tokens_fetched = 0
        self._resources: dict[str, ResourceAccessor[Any]] = {
            name: ResourceAccessor(self, rules) for name, rules in RESOURCE_RULES.items()
        }

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PowerOfficeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PowerOfficeClient(base_url={self.base_url!r})"

    # -- resources ------------------------------------------------------------------------------

    @overload
    def resource(self, name: Literal["employees"]) -> ResourceAccessor[Employee]: ...
    @overload
    def resource(self, name: Literal["customers"]) -> ResourceAccessor[Customer]: ...
    @overload
    def resource(self, name: Literal["contactpersons"]) -> ResourceAccessor[ContactPerson]: ...
    @overload
    def resource(self, name: str) -> ResourceAccessor[Any]: ...
    def resource(self, name: str) -> ResourceAccessor[Any]:
        """The reads and writes of one API resource (``employees``, ``customers``,
        ``contactpersons``); ``ValueError`` for any other name."""
        accessor = self._resources.get(name)
        if accessor is None:
            raise ValueError(
                f"unknown PowerOffice resource {name!r} (known: {', '.join(RESOURCE_RULES)})"
            )
        return accessor

    # -- HTTP core ------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        idempotent: bool,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        patch: list[dict[str, Any]] | None = None,
        not_found_ok_on_retry: bool = False,
    ) -> httpx.Response:
        state = _CallState()
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(lambda exc: _retriable(exc, idempotent)),
            sleep=self._sleep,
            before_sleep=lambda rs: _log_retry(operation, rs),
            reraise=True,
        )

        def attempt() -> httpx.Response:
            state.attempts += 1
            response = self._exchange(method, path, operation, query, json_body, patch, state)
            if response.status_code == 404 and not_found_ok_on_retry and state.attempts > 1:
                return response
            if response.status_code >= 400:
                raise self._error(response, operation)
            return response

        return retrying(attempt)

    def _exchange(
        self,
        method: str,
        path: str,
        operation: str,
        query: Mapping[str, str],
        json_body: Any,
        patch: list[dict[str, Any]] | None,
        state: _CallState,
    ) -> httpx.Response:
        """One request (plus one re-authenticated resend after a 401)."""
        while True:
            token = self._access_token()
            headers = {
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Ocp-Apim-Subscription-Key": self._subscription_key.get_secret_value(),
            }
            content: bytes | None = None
            if patch is not None:
                headers["Content-Type"] = "application/json-patch+json"
                content = json.dumps(patch, separators=(",", ":")).encode()
            response = self._send(
                method,
                self.base_url + path,
                operation,
                params=query,
                headers=headers,
                json=json_body,
                content=content,
            )
            if response.status_code == 401 and not state.reauthenticated:
                state.reauthenticated = True
                self._invalidate_token(token)
                log.info("poweroffice %s got 401; re-authenticating once", operation)
                continue
            return response

    def _send(self, method: str, url: str, operation: str, **kwargs: Any) -> httpx.Response:
        self.budget.acquire()
        self._pacer.wait()
        started = time.perf_counter()
        try:
            try:
                response = self._http.request(method, url, **kwargs)
            finally:
                self._pacer.done()
        except httpx.TimeoutException as exc:
            self._observe(operation, 0, time.perf_counter() - started)
            raise TransportError(f"poweroffice {operation}: timed out") from exc
        except httpx.HTTPError as exc:
            self._observe(operation, 0, time.perf_counter() - started)
            raise TransportError(
                f"poweroffice {operation}: transport error ({type(exc).__name__})"
            ) from exc
        seconds = time.perf_counter() - started
        self._observe(operation, response.status_code, seconds)
        log.debug(
            "poweroffice %s %s -> %s in %.3fs",
            method,
            operation,
            response.status_code,
            seconds,
        )
        if response.status_code == 429:  # the shared budget slows down and holds until then
            self.budget.note_throttled(_retry_after(response, self.retry.max_retry_after))
        return response

    def _observe(self, operation: str, status: int, seconds: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(SYSTEM, operation, status, seconds)
        except Exception:
            log.exception("poweroffice on_request observer failed")

    def _error(self, response: httpx.Response, operation: str) -> ApiError:
        status = response.status_code
        title, detail, code = _problem(response)
        message = f"{operation} failed: {title or response.reason_phrase or 'HTTP error'}"
        data: dict[str, Any] = {"operation": operation}
        if detail:
            data["detail"] = detail
        kwargs: dict[str, Any] = {
            "system": SYSTEM,
            "status": status,
            "error_code": code,
            "data": data,
        }
        if status == 429:
            wait = _retry_after(response, self.retry.max_retry_after)
            return RateLimitedError(message, retry_after=wait, **kwargs)
        if status in (400, 422):
            return ValidationError(message, **kwargs)
        if status == 401:
            return AuthenticationError(message, **kwargs)
        if status == 403:
            return PermissionDeniedError(message, **kwargs)
        if status == 404:
            return NotFoundError(message, **kwargs)
        if status == 409:
            return ConflictError(message, **kwargs)
        if status >= 500:
            return ServerError(message, **kwargs)
        return ApiError(message, **kwargs)

    @staticmethod
    def _json(response: httpx.Response, operation: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ContractError(f"poweroffice {operation}: response body is not JSON") from exc

    # -- retry policy ---------------------------------------------------------------------------

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitedError):
            return state.attempt_number >= self.retry.max_rate_limited_attempts
        return state.attempt_number >= self.retry.max_attempts

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitedError):
            return exc.retry_after if exc.retry_after is not None else 1.0
        backoff = wait_random_exponential(
            multiplier=self.retry.initial_backoff, max=self.retry.max_backoff
        )
        return float(backoff(state))

    # -- token ----------------------------------------------------------------------------------

    def _access_token(self) -> SecretStr:
        with self._token_lock:
            token = self._token
            if token is not None and self._clock() < token.renew_at:
                return token.value
            self._token = self._fetch_token()
            return self._token.value

    def _invalidate_token(self, used: SecretStr) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == used:
                self._token = None

    def _fetch_token(self) -> _Token:
        basic = base64.b64encode(
            f"{self._application_key.get_secret_value()}:"
            f"{self._client_key.get_secret_value()}".encode()
        ).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Ocp-Apim-Subscription-Key": self._subscription_key.get_secret_value(),
        }
        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(lambda exc: _retriable(exc, True)),
            sleep=self._sleep,
            before_sleep=lambda rs: _log_retry("token", rs),
            reraise=True,
        )

        def attempt() -> _Token:
            requested_at = self._clock()
            response = self._send(
                "POST",
                self.token_url,
                "token",
                headers=headers,
                data={"grant_type": "client_credentials"},
            )
            if response.status_code in (400, 401):
                title, _, code = _problem(response)
                raise AuthenticationError(
                    f"token request refused: {title or 'invalid credentials'}",
                    system=SYSTEM,
                    status=response.status_code,
                    error_code=code,
                )
            if response.status_code >= 400:
                raise self._error(response, "token")
            body = self._json(response, "token")
            value = body.get("access_token") if isinstance(body, dict) else None
            lifetime = body.get("expires_in") if isinstance(body, dict) else None
            if not isinstance(value, str) or not value:
                raise ContractError("poweroffice token: response has no access_token")
            if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
                lifetime = 600  # the spec's example lifetime; the real one is 1200
            self.tokens_fetched += 1
            # Renew after a fraction of the lifetime: a fixed margin would renew a short-lived
            # token before every call.
            renewal = renew_at(
                requested_at,
                float(lifetime),
                fraction=self.renew_fraction,
                cap=self.renew_cap_seconds,
            )
            return _Token(SecretStr(value), renewal)

        return retrying(attempt)


@dataclass(frozen=True)
class ParentRules:
    """How a nested resource names its parent: the list filter (``contactIds``) and the
    record's property holding the parent's id (``ContactId``)."""

    filter: str
    field: str


@dataclass(frozen=True)
class ResourceRules(Generic[RecordT]):
    """How one PowerOffice resource is addressed — the data behind ``ResourceAccessor``.

    ``name`` is the API resource (it prefixes operation names: ``customers.get``); ``path`` its
    collection; ``reference_filter`` the list filter that finds a create reference (the
    reference's property is ``REFERENCE_FIELD[name]``). A resource with a ``parent``
    (``ParentRules``) is nested: its records live under their parent customer — created at
    ``{path}/{parent}``, addressed at ``{path}/{parent}/{id}``, listed and looked up with
    ``<parent.filter>={parent}`` and carrying the parent's id in ``parent.field``.
    """

    name: Resource
    path: str
    model: type[RecordT]
    reference_filter: str
    parent: ParentRules | None = None

    @property
    def reference_field(self) -> str:
        return REFERENCE_FIELD[self.name]

    @property
    def nested(self) -> bool:
        return self.parent is not None

    def checked_parent(self, parent_id: int | None) -> int | None:
        """``parent_id``, required by a nested resource and refused by the others."""
        if self.nested and parent_id is None:
            raise ValueError(f"{self.name} are addressed with their parent's id (ContactId)")
        if not self.nested and parent_id is not None:
            raise ValueError(f"{self.name} have no parent; parent_id must not be given")
        return parent_id

    def collection_path(self, parent_id: int | None) -> str:
        """Where a record is created: the collection, under its parent when nested."""
        parent = self.checked_parent(parent_id)
        return self.path if parent is None else f"{self.path}/{parent}"

    def record_path(self, record_id: int, parent_id: int | None) -> str:
        return f"{self.collection_path(parent_id)}/{record_id}"


RESOURCE_RULES: Final[Mapping[str, ResourceRules[Any]]] = {
    "employees": ResourceRules("employees", "/Employees", Employee, "externalImportReference"),
    "customers": ResourceRules("customers", "/Customers", Customer, "externalImportReference"),
    "contactpersons": ResourceRules(
        "contactpersons",
        "/ContactPersons",
        ContactPerson,
        "externalCodes",
        parent=ParentRules(filter="contactIds", field="ContactId"),
    ),
}


class ResourceAccessor(Generic[RecordT]):
    """One resource's reads and writes through a ``PowerOfficeClient`` (``client.resource(name)``).

    ``list``/``get``/``find_by_reference``/``create``/``update`` return typed records;
    ``list_wire``/``get_wire`` the records as the API sent them (for callers that keep them
    verbatim: a parsed timestamp would lose the 7th fractional digit). ``parent_id`` is the
    customer's ``Id`` of a nested resource (contact persons; required there, refused elsewhere).
    HTTP, auth, budget and retries stay in the client; this class holds what depends on the
    resource: paths, the reference look-up before a create, guarded patches.
    """

    def __init__(self, client: PowerOfficeClient, rules: ResourceRules[RecordT]) -> None:
        self._client = client
        self.rules: ResourceRules[RecordT] = rules
        self.name: Resource = rules.name

    def __repr__(self) -> str:
        return f"ResourceAccessor({self.name!r})"

    # -- reads ----------------------------------------------------------------------------------

    def list(
        self,
        *,
        changed_since: datetime | str | None = None,
        fields: Sequence[str] | None = None,
        order_by: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        params: Mapping[str, Any] | None = None,
        parent_ids: Sequence[int] | None = None,
    ) -> Iterator[RecordT]:
        """Typed records of ``list_wire`` (same arguments)."""
        for item in self.list_wire(
            changed_since=changed_since,
            fields=fields,
            order_by=order_by,
            page_size=page_size,
            params=params,
            parent_ids=parent_ids,
        ):
            yield parse_record(self.rules.model, item)

    def list_wire(
        self,
        *,
        changed_since: datetime | str | None = None,
        fields: Sequence[str] | None = None,
        order_by: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        params: Mapping[str, Any] | None = None,
        parent_ids: Sequence[int] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Wire records. With ``changed_since`` (exclusive; a ``str`` is sent verbatim, e.g. a
        raw ``LastChangedDateTimeOffset``) pages by keyset on (``LastChangedDateTimeOffset``,
        ``Id``) and ignores ``order_by``; otherwise pages by ``PageNumber`` in ``order_by`` order
        (default ``Id asc``). ``fields`` projects (``Id``, and ``LastChangedDateTimeOffset`` when
        incremental, are always included). Extra filters in ``params``, e.g.
        ``{"employeeCreatedDateTimeOffsetGreaterThan": dt}``; a nested resource's
        ``parent_ids`` restrict it to those parents (all of them when omitted)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        base = dict(params or {})
        if parent_ids:
            if self.rules.parent is None:
                raise ValueError(f"{self.name} have no parent; parent_ids must not be given")
            base[self.rules.parent.filter] = ",".join(str(i) for i in parent_ids)
        wanted = list(fields) if fields else None
        if wanted is not None and "Id" not in wanted:
            wanted.insert(0, "Id")
        if changed_since is None:
            if wanted is not None:
                base["Fields"] = ",".join(wanted)
            base["OrderBy"] = order_by or "Id asc"
            yield from self._iter_numbered(base, page_size)
            return
        if wanted is not None:
            if "LastChangedDateTimeOffset" not in wanted:
                wanted.append("LastChangedDateTimeOffset")
            base["Fields"] = ",".join(wanted)
        yield from self._iter_changed(base, changed_since, page_size)

    def get(self, record_id: int, *, parent_id: int | None = None) -> RecordT:
        """One record (``NotFoundError`` if absent)."""
        return parse_record(self.rules.model, self.get_wire(record_id, parent_id=parent_id))

    def get_wire(self, record_id: int, *, parent_id: int | None = None) -> dict[str, Any]:
        """One record as the API sent it (``NotFoundError`` if absent)."""
        return self._get_one(self.rules.record_path(record_id, parent_id))

    def find_by_reference(self, reference: str, *, parent_id: int | None = None) -> RecordT | None:
        """The record whose reference property (``ExternalImportReference``; contact persons:
        ``ExternalCode``, among ``parent_id``'s) is ``reference``, if any."""
        found = self._find_by_reference(reference, self.rules.checked_parent(parent_id))
        return parse_record(self.rules.model, found) if found is not None else None

    # -- writes ---------------------------------------------------------------------------------

    def create(
        self, values: Mapping[str, Any], *, reference: str, parent_id: int | None = None
    ) -> CreateResult[RecordT]:
        """Create, or return the record that already holds ``reference`` (see the module
        docstring). Required values: employees ``FirstName``/``LastName``; customers ``Name``,
        or ``IsPerson`` + ``FirstName``/``LastName``."""
        return self._create(self.rules.collection_path(parent_id), values, reference, parent_id)

    def update(
        self,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None = None,
        parent_id: int | None = None,
    ) -> UpdateResult[RecordT]:
        """A JSON Patch of ``changes`` guarded by ``test``s of ``expected`` (see the module
        docstring); ``UpdateResult.written`` says whether the patch was written."""
        return self._update(self.rules.record_path(record_id, parent_id), changes, expected)

    def delete(self, record_id: int, *, parent_id: int | None = None) -> None:
        path = self.rules.record_path(record_id, parent_id)
        self._client._call(
            "DELETE", path, f"{self.name}.delete", idempotent=True, not_found_ok_on_retry=True
        )

    # -- the resource-level logic ------------------------------------------------------------

    def _iter_numbered(self, params: dict[str, Any], page_size: int) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            items = self._get_list(
                self.rules.path, {**params, "PageNumber": page, "PageSize": page_size}
            )
            # Only an empty page (or 204) ends the scan: a short page may be a server that
            # returns fewer records than PageSize asked for.
            if not items:
                return
            yield from items
            page += 1

    def _iter_changed(
        self,
        params: dict[str, Any],
        since: datetime | str,
        page_size: int,
    ) -> Iterator[dict[str, Any]]:
        # Keyset paging: re-query from just below the last timestamp seen (so records sharing
        # it are not skipped) and drop the ones already yielded; a page made entirely of one
        # timestamp falls back to the next PageNumber under the same floor.
        floor: datetime | str = since
        page = 1
        edge: datetime | None = None
        seen_at_edge: set[int] = set()
        while True:
            query = {
                **params,
                "lastChangedDateTimeOffsetGreaterThan": floor,
                "OrderBy": _CHANGED_ORDER,
                "PageNumber": page,
                "PageSize": page_size,
            }
            items = self._get_list(self.rules.path, query)
            if not items:  # never stop at a short page: the server may clamp PageSize
                return
            stamps = [self._stamp_of(item) for item in items]
            for item, stamp in zip(items, stamps, strict=True):
                if stamp == edge and item.get("Id") in seen_at_edge:
                    continue
                yield item
            top = stamps[-1]
            ids_at_top = {
                item["Id"]
                for item, stamp in zip(items, stamps, strict=True)
                if stamp == top and isinstance(item.get("Id"), int)
            }
            if edge is not None and top <= edge:
                # No progress past the edge (a page of one timestamp, or a server that ignored
                # OrderBy): keep the floor and take the next page.
                if top == edge:
                    seen_at_edge |= ids_at_top
                page += 1
                continue
            seen_at_edge = ids_at_top
            edge = top
            floor = top - _TICK
            page = 1

    def _stamp_of(self, item: Mapping[str, Any]) -> datetime:
        raw = item.get("LastChangedDateTimeOffset")
        try:
            if not isinstance(raw, str):
                raise ValueError("missing")
            return parse_timestamp(raw)
        except ValueError as exc:
            record_id = item.get("Id")
            shown = record_id if isinstance(record_id, int) else "?"
            raise ContractError(
                f"poweroffice {self.name} Id={shown}: LastChangedDateTimeOffset missing or invalid"
            ) from exc

    def _get_list(self, path: str, params: Mapping[str, Any]) -> Sequence[dict[str, Any]]:
        response = self._client._call(
            "GET", path, f"{self.name}.list", idempotent=True, params=params
        )
        if response.status_code == 204 or not response.content.strip():
            return []
        body = self._client._json(response, f"{self.name}.list")
        if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
            raise ContractError(f"poweroffice {self.name}.list: expected a JSON array of objects")
        return body

    def _get_one(self, path: str) -> dict[str, Any]:
        response = self._client._call("GET", path, f"{self.name}.get", idempotent=True)
        body = self._client._json(response, f"{self.name}.get")
        if not isinstance(body, dict):
            raise ContractError(f"poweroffice {self.name}.get: expected a JSON object")
        return body

    def _find_by_reference(self, reference: str, parent_id: int | None) -> dict[str, Any] | None:
        """The wire record holding ``reference``; ``parent_id`` already checked against the
        rules (given exactly when the resource is nested)."""
        _check_reference(reference)
        parent = self.rules.parent
        params: dict[str, Any] = {self.rules.reference_filter: reference}
        if parent is not None:
            params[parent.filter] = str(parent_id)
        field_name = self.rules.reference_field
        wanted = reference.strip().casefold()
        # Filter again on our side: a server that ignored the filter must not make us link
        # a wrong record.
        for item in self._get_list(self.rules.path, params):
            value = item.get(field_name)
            same_parent = parent is None or item.get(parent.field) == parent_id
            if isinstance(value, str) and value.strip().casefold() == wanted and same_parent:
                return item
        return None

    # -- writes ---------------------------------------------------------------------------------

    def _create(
        self,
        path: str,
        values: Mapping[str, Any],
        reference: str,
        parent_id: int | None,
    ) -> CreateResult[RecordT]:
        _check_reference(reference)
        field_name = self.rules.reference_field
        given = values.get(field_name)
        if given is not None and given != reference:
            raise ValueError(f"{field_name} in values differs from reference")
        payload = _jsonable({**values, field_name: reference})
        existing = self._find_by_reference(reference, parent_id)
        if existing is not None:
            return CreateResult(parse_record(self.rules.model, existing), created=False)
        operation = f"{self.name}.create"
        for post in range(1, self._client.retry.max_create_posts + 1):
            try:
                response = self._client._call(
                    "POST", path, operation, idempotent=False, json_body=payload
                )
            except ValidationError as exc:
                # Possibly "reference already in use" (an earlier attempt or a concurrent
                # creator): whoever holds the reference is the record we wanted. Reads may lag
                # that record's creation, so when the refusal names the reference (or says
                # "in use") the lookup is repeated with back-off before the 400 is believed.
                waits = names_reference_in_use(exc, field_name)
                existing = self._find_after_refusal(reference, parent_id, waits)
                if existing is not None:
                    return CreateResult(parse_record(self.rules.model, existing), created=False)
                raise
            except (ServerError, TransportError) as exc:
                # Outcome unknown: look before posting again.
                existing = self._find_by_reference(reference, parent_id)
                if existing is not None:
                    return CreateResult(parse_record(self.rules.model, existing), created=True)
                if post >= self._client.retry.max_create_posts:
                    raise
                wait = min(
                    self._client.retry.max_backoff,
                    self._client.retry.initial_backoff * 2 ** (post - 1),
                )
                log.warning(
                    "poweroffice %s outcome unknown (%s), not found by reference; posting again",
                    operation,
                    type(exc).__name__,
                )
                self._client._sleep(wait)
                continue
            return CreateResult(
                parse_record(self.rules.model, self._client._json(response, operation)),
                created=True,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_after_refusal(
        self, reference: str, parent_id: int | None, wait: bool
    ) -> dict[str, Any] | None:
        """The record holding ``reference`` after a refused POST; looked up once, or up to
        ``RetryPolicy.max_guard_reads`` times with back-off when ``wait``."""
        if not wait:
            return self._find_by_reference(reference, parent_id)
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self._client.retry.max_guard_reads)),
            wait=wait_exponential(
                multiplier=self._client.retry.guard_read_backoff,
                max=self._client.retry.guard_read_max_backoff,
            ),
            retry=retry_if_result(lambda found: found is None),
            sleep=self._client._sleep,
            retry_error_callback=lambda state: None,
        )
        found: dict[str, Any] | None = retrying(self._find_by_reference, reference, parent_id)
        return found

    def _update(
        self,
        path: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Any] | None,
    ) -> UpdateResult[RecordT]:
        if not changes:
            raise ValueError("changes must not be empty")
        operation = f"{self.name}.update"
        ops = build_patch(changes, expected)
        try:
            response = self._client._call(
                "PATCH", path, operation, idempotent=bool(expected), patch=ops
            )
        except (ConflictError, ValidationError) as exc:
            if not expected:
                if isinstance(exc, ValidationError):
                    raise
                current = self._get_one(path)
                if not _holds(current, changes):
                    # already in the desired state
                    return UpdateResult(parse_record(self.rules.model, current), written=False)
                raise
            held = self._resolve_refused(path, changes, expected, exc)
            return UpdateResult(parse_record(self.rules.model, held), written=False)
        return UpdateResult(
            parse_record(self.rules.model, self._client._json(response, operation)), written=True
        )

    def _resolve_refused(
        self,
        path: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Any],
        refusal: ConflictError | ValidationError,
    ) -> dict[str, Any]:
        """Explain a refused guarded patch by reading the record; returns it when it already
        has the desired values, else raises ``GuardFailedError`` (or re-raises ``refusal``).

        Reads may lag the write that broke the guard, so a read that still satisfies every guard
        proves nothing: read again with back-off. Only for a 400 that does not name a ``test``
        (it may be about the values) a test-only patch — which the server evaluates on the
        primary, like the refused one — decides once whether the guards hold there.
        """
        operation = f"{self.name}.update"
        guard_refused = isinstance(refusal, ConflictError) or names_failed_test(refusal)
        probed = False
        last: dict[str, Any] = {}

        def read() -> dict[str, Any] | None:
            nonlocal guard_refused, probed, last
            last = self._get_one(path)
            if not _holds(last, changes) or _holds(last, expected):
                return last  # explained: desired values there, or a guard broken
            if not guard_refused and not probed:
                probed = True
                try:
                    self._client._call(
                        "PATCH",
                        path,
                        operation,
                        idempotent=True,
                        patch=build_patch({}, expected),
                    )
                except (ConflictError, ValidationError):
                    guard_refused = True  # the guards fail on the primary: a lagging read
                else:
                    raise refusal  # the guards hold: the 400 was about the values
            return None  # a lagging read: not yet explained

        retrying = Retrying(
            stop=stop_after_attempt(max(1, self._client.retry.max_guard_reads)),
            wait=wait_exponential(
                multiplier=self._client.retry.guard_read_backoff,
                max=self._client.retry.guard_read_max_backoff,
            ),
            retry=retry_if_result(lambda found: found is None),
            sleep=self._client._sleep,
            retry_error_callback=lambda state: None,
        )
        current = retrying(read)
        if current is not None and not _holds(current, changes):
            # Already in the desired state (an earlier attempt of ours, or the same edit).
            return current
        mismatched = _holds(current, expected) if current is not None else []
        unconfirmed = current is None
        if unconfirmed:
            log.warning(
                "poweroffice %s refused (status %s) but %d reads still satisfy its guards; "
                "reporting a conflict with the last read",
                operation,
                refusal.status,
                self._client.retry.max_guard_reads,
            )
        raise GuardFailedError(
            f"{operation}: record changed since it was read (test failed)",
            current=current if current is not None else last,
            system=SYSTEM,
            status=refusal.status,
            error_code="test_failed",
            data={"properties": mismatched, "unconfirmed": unconfirmed},
        ) from refusal


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set):
        return ",".join(str(v) for v in value)
    return str(value)


def _retriable(exc: BaseException, idempotent: bool) -> bool:
    if isinstance(exc, RateLimitedError):
        return True  # the gateway refused it before the API saw it: safe for any method
    if isinstance(exc, ServerError | TransportError):
        return idempotent
    return False


def _log_retry(operation: str, state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    status = exc.status if isinstance(exc, ApiError) else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "poweroffice %s attempt %d failed (%s%s); retrying in %.2fs",
        operation,
        state.attempt_number,
        type(exc).__name__ if isinstance(exc, TetherError) else "error",
        f" status={status}" if status is not None else "",
        wait,
    )


def _check_reference(reference: str) -> None:
    if not reference or not reference.strip():
        raise ValueError("reference must not be empty")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise ValueError(f"reference must be at most {MAX_REFERENCE_LENGTH} characters")
    if "," in reference:
        raise ValueError("reference must not contain a comma (list filters split on commas)")


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEMO_BASE_URL",
    "DEMO_TOKEN_URL",
    "MAX_PAGE_SIZE",
    "PRODUCTION_BASE_URL",
    "PRODUCTION_TOKEN_URL",
    "RESOURCE_RULES",
    "SYSTEM",
    "CreateResult",
    "GuardFailedError",
    "ParentRules",
    "PowerOfficeClient",
    "RequestObserver",
    "ResourceAccessor",
    "ResourceRules",
    "RetryPolicy",
    "UpdateResult",
    "build_patch",
    "names_failed_test",
    "names_reference_in_use",
    "scrub",
]

"""Production client of the Wix Contacts v4 REST API (sync httpx), used by extractor and loader.

What it is for: every read and write Tether makes against Wix goes through ``WixClient``. It
follows ``shared/reference/wix-contacts-v4.md`` only — nothing simulator-specific (the admin API is
in ``admin.py``). Decisions are listed in ``docs/wix-decisions.md``; the ones callers must know:

- **Auth**: ``ApiKeyAuth`` (``Authorization: <key>`` + ``wix-site-id``) or ``AppAuth`` (OAuth
  client credentials -> 4 h token sent raw like the official SDK, renewed by the shared rule of
  ``services.core.tokens``: 10 % of the lifetime / at most 60 s before expiry, so a short-lived
  token is not renewed before every call; and once more on a 401). Secrets are ``SecretStr``
  and never logged.
- **Budget**: every HTTP request to the contacts API (retries included) first acquires one permit
  from the injected ``ApiBudget``. The token endpoint is not budgeted.
- **Retries** (tenacity): 429 is retried for every call (the request was not processed) after
  ``Retry-After`` or ``rate_limit_wait`` seconds; 5xx and timeouts are retried with capped
  exponential backoff and jitter only for idempotent calls — get, query, update (guarded by its
  revision), merge (guarded by its revision) and delete. A create is retried only when the
  request provably never left (connection refused, connect timeout); otherwise its error reaches
  the caller, who finds the contact again (duplicate rule / extended field) before re-creating.
- **Errors**: ``services.core.errors`` types with ``system="wix"`` and Wix's ``error_code``;
  ``create`` raises ``DuplicateContactError`` (a ``ConflictError``) carrying
  ``duplicate_contact_id``; a stale revision raises ``ConflictError`` with
  ``error_code="CONTACT_ALREADY_CHANGED"``. Messages and ``data`` carry ids and codes only — no
  secret, token, e-mail or phone (Wix's own message/description are dropped for that reason).
- **Writes** take the fields as a mapping of field path -> value (``fields.FIELDS``: the paths a
  dataflow file names; a missing path is left alone, ``None`` clears): ``create(values)``,
  ``update(current, values)``. ``update`` sends ``revision=current.revision`` and the minimal
  ``info`` ``fields.info_for_update`` builds: ``name`` when a name part changes, and the full
  ``emails``/``phones`` collection rebuilt from ``current`` with only the primary item's value
  changed (Wix replaces a sent collection). Items carry only their writable fields (``tag``,
  ``email`` / ``countryCode``, ``phone``, ``primary``): the read-only ``id``, ``e164Phone``,
  ``formattedPhone`` and anything else Wix added are never sent back (Wix matches an item by its
  value; the simulator's ``strict_read_only_items`` refuses them like a strict server would).
  ``create_info``/``update_info`` send an ``info`` as given.
- **Paging**: ``iter_query`` pages on until a page comes back empty, or ``total`` (when Wix
  counted it: not ``tooManyToCount``) is reached — never stopping at the first short page, since
  a server may clamp the page size below the one asked for.
- A delete retried after an unknown outcome treats 404 as done.

Imports: standard library, httpx, tenacity, pydantic, ``services.core``, ``models`` and ``fields``
— never the simulator.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr
from tenacity import RetryCallState, Retrying

from services.connectors.wix.fields import info_for_create, info_for_update
from services.connectors.wix.models import Contact, parse_contact
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
    TransportError,
    ValidationError,
)
from services.core.settings import WixSettings
from services.core.tokens import renew_at

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiKeyAuth",
    "AppAuth",
    "ContactPage",
    "DuplicateContactError",
    "GetContactResult",
    "OnRequest",
    "RawContactPage",
    "RequestNotSentError",
    "WixAuth",
    "WixClient",
    "last_page",
]

log = logging.getLogger(__name__)

SYSTEM: Final = "wix"
DEFAULT_BASE_URL: Final = "https://www.wixapis.com"
CONTACTS: Final = "/contacts/v4/contacts"
EXTENDED_FIELDS: Final = "/contacts/v4/extended-fields"
MAX_PAGE: Final = 1000

#: ``on_request(system, operation, status, seconds)``; status 0 when no response arrived.
OnRequest = Callable[[str, str, int, float], None]


class ApiKeyAuth(BaseModel):
    """An API key of the site owner's account plus the site it is used for."""

    model_config = ConfigDict(frozen=True)
    api_key: SecretStr
    site_id: str


class AppAuth(BaseModel):
    """An installed Wix app: app id/secret and the app instance (site) to act on."""

    model_config = ConfigDict(frozen=True)
    app_id: str
    app_secret: SecretStr
    instance_id: str


WixAuth = ApiKeyAuth | AppAuth


def auth_from_settings(settings: WixSettings) -> WixAuth:
    """The Wix credentials of the settings: an API key with its site id, or the three app
    credentials (app id, app secret, instance id). One rule for every service and tool."""
    if settings.wix_api_key.get_secret_value():
        if not settings.wix_site_id:
            raise ConfigurationError("TETHER_WIX_SITE_ID is required with TETHER_WIX_API_KEY")
        return ApiKeyAuth(api_key=settings.wix_api_key, site_id=settings.wix_site_id)
    app = {
        "TETHER_WIX_APP_ID": bool(settings.wix_app_id),
        "TETHER_WIX_APP_SECRET": bool(settings.wix_app_secret.get_secret_value()),
        "TETHER_WIX_INSTANCE_ID": bool(settings.wix_instance_id),
    }
    if all(app.values()):
        return AppAuth(
            app_id=settings.wix_app_id,
            app_secret=settings.wix_app_secret,
            instance_id=settings.wix_instance_id,
        )
    if any(app.values()):
        missing = ", ".join(name for name, given in app.items() if not given)
        raise ConfigurationError(f"Wix app credentials incomplete: {missing} missing")
    raise ConfigurationError(
        "Wix credentials missing: TETHER_WIX_API_KEY + TETHER_WIX_SITE_ID, or "
        "TETHER_WIX_APP_ID + TETHER_WIX_APP_SECRET + TETHER_WIX_INSTANCE_ID"
    )


class DuplicateContactError(ConflictError):
    """Create/update refused by the duplicate rule (409 ``DUPLICATE_CONTACT_EXISTS``)."""

    def __init__(self, message: str, *, duplicate_contact_id: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.duplicate_contact_id = duplicate_contact_id


class RequestNotSentError(TransportError):
    """The request never reached Wix (connect failure, token endpoint down): safe to resend."""


@dataclass(frozen=True)
class GetContactResult:
    contact: Contact
    response_type: str  # REGULAR | MERGED (the requested id was merged into contact.id)

    @property
    def merged(self) -> bool:
        return self.response_type == "MERGED"


@dataclass(frozen=True)
class ContactPage:
    contacts: list[Contact]
    count: int
    offset: int
    total: int | None


@dataclass(frozen=True)
class RawContactPage:
    """A Query Contacts page as sent: ``contacts`` are unparsed wire objects (any JSON value)."""

    contacts: list[Any]
    count: int
    offset: int
    total: int | None


@dataclass
class _Retries:
    """Per-call retry accounting (what tenacity's ``retry`` predicate decides on)."""

    idempotent: bool
    max_failures: int
    max_throttled: int
    app_auth: bool
    failures: int = 0
    throttled: int = 0
    reauthenticated: bool = False

    def allow(self, exc: BaseException | None) -> bool:
        if isinstance(exc, RateLimitedError):
            self.throttled += 1
            return self.throttled <= self.max_throttled
        if isinstance(exc, AuthenticationError) and exc.status == 401 and self.app_auth:
            if self.reauthenticated:
                return False
            self.reauthenticated = True
            return True
        if isinstance(exc, RequestNotSentError) or (
            self.idempotent and isinstance(exc, (ServerError, TransportError))
        ):
            self.failures += 1
            return self.failures <= self.max_failures
        return False


class WixClient:
    """Synchronous Wix Contacts v4 client; thread-safe (one httpx pool, token under a lock)."""

    def __init__(
        self,
        auth: WixAuth,
        budget: ApiBudget,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        rate_limit_wait_seconds: float = 10.0,
        max_rate_limit_retries: int = 10,
        on_request: OnRequest | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._auth = auth
        self._budget = budget
        self._base_url = base_url.rstrip("/")
        self._max_attempts = max(1, max_attempts)
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = backoff_max_seconds
        self._rate_limit_wait = rate_limit_wait_seconds
        self._max_rate_limit_retries = max_rate_limit_retries
        self._on_request = on_request
        self._sleep = sleep
        self._random = random.Random()
        self._http = httpx.Client(
            base_url=self._base_url,
            timeout=timeout_seconds,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        # The id-free paths as absolute URLs, built once: httpx parses a relative path and merges
        # it into base_url again on every request (create and query are the hot ones).
        self._fixed_urls = {
            path: httpx.URL(self._base_url + path)
            for path in (CONTACTS, f"{CONTACTS}/query", EXTENDED_FIELDS)
        }
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._token_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WixClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations --------------------------------------------------------------------------

    def get(
        self,
        contact_id: str,
        *,
        fields: Sequence[str] | None = None,
        fieldsets: Sequence[str] | None = None,
    ) -> GetContactResult:
        """Get one contact; a merged-away id yields the target with ``merged`` true."""
        params: list[tuple[str, str]] = [("fields", f) for f in fields or ()]
        params += [("fieldsets", f) for f in fieldsets or ()]
        body = self._call(
            "GET", f"{CONTACTS}/{_segment(contact_id)}", "get", params=params, idempotent=True
        )
        return GetContactResult(
            contact=_contact_of(body, "get"), response_type=str(body.get("responseType", "REGULAR"))
        )

    def create(
        self,
        values: Mapping[str, str | None],
        *,
        phone_country: str | None = None,
        extended_fields: Mapping[str, str | int | float] | None = None,
        allow_duplicates: bool = False,
    ) -> Contact:
        """Create a contact holding ``values`` (field path -> value, ``fields.FIELDS``).

        Raises ``DuplicateContactError`` when the duplicate rule refuses it. Never retried after
        the request may have reached Wix: on ``ServerError`` / ``TransportError`` the caller must
        look the contact up (by email or extended field) before creating again.
        """
        info = info_for_create(values, phone_country=phone_country, extended_fields=extended_fields)
        return self.create_info(info, allow_duplicates=allow_duplicates)

    def create_info(self, info: Mapping[str, Any], *, allow_duplicates: bool = False) -> Contact:
        """Raw create: ``info`` in wire form, sent as given (see ``create``)."""
        body = self._call(
            "POST",
            CONTACTS,
            "create",
            json={"info": dict(info), "allowDuplicates": allow_duplicates},
            idempotent=False,
        )
        return _contact_of(body, "create")

    def update(
        self,
        current: Contact,
        values: Mapping[str, str | None],
        *,
        extended_fields: Mapping[str, str | int | float | None] | None = None,
        allow_duplicates: bool = False,
    ) -> Contact:
        """Write ``values`` (field path -> value; a missing path is left alone, ``None`` clears
        it) onto ``current`` at ``current.revision``.

        Raises ``ConflictError`` (``CONTACT_ALREADY_CHANGED``) when Wix has a newer revision,
        ``DuplicateContactError`` when the new primary email belongs to another contact.
        """
        info = info_for_update(current, values, extended_fields=extended_fields)
        return self.update_info(
            current.id, current.revision, info, allow_duplicates=allow_duplicates
        )

    def update_info(
        self,
        contact_id: str,
        revision: int,
        info: Mapping[str, Any],
        *,
        allow_duplicates: bool = False,
    ) -> Contact:
        """Raw PATCH: each ``info`` key sent replaces that key on the contact."""
        if not info:
            raise ValueError("update needs at least one info field")
        body = self._call(
            "PATCH",
            f"{CONTACTS}/{_segment(contact_id)}",
            "update",
            json={"revision": revision, "info": dict(info), "allowDuplicates": allow_duplicates},
            idempotent=True,
        )
        return _contact_of(body, "update")

    def delete(self, contact_id: str) -> None:
        """Delete a contact; ``NotFoundError`` if absent (unless a retry finds it gone)."""
        self._call(
            "DELETE",
            f"{CONTACTS}/{_segment(contact_id)}",
            "delete",
            idempotent=True,
            gone_after_retry_ok=True,
        )

    def merge(self, target_id: str, target_revision: int, source_ids: Sequence[str]) -> Contact:
        """Merge 1-5 source contacts into the target (sources are deleted); returns the target."""
        body = self._call(
            "POST",
            f"{CONTACTS}/{_segment(target_id)}/merge",
            "merge",
            json={"targetContactRevision": target_revision, "sourceContactIds": list(source_ids)},
            idempotent=True,
        )
        return _contact_of(body, "merge")

    def query_page(
        self,
        query_filter: Mapping[str, Any] | None = None,
        *,
        sort_field: str = "createdDate",
        order: str = "ASC",
        limit: int = MAX_PAGE,
        offset: int = 0,
        fields: Sequence[str] | None = None,
        fieldsets: Sequence[str] | None = None,
        search: str | None = None,
    ) -> ContactPage:
        """One page of Query Contacts (offset paging, ``limit`` 1..1000)."""
        raw = self.query_page_raw(
            query_filter,
            sort_field=sort_field,
            order=order,
            limit=limit,
            offset=offset,
            fields=fields,
            fieldsets=fieldsets,
            search=search,
        )
        return ContactPage(
            contacts=[parse_contact(c) for c in raw.contacts],
            count=raw.count,
            offset=raw.offset,
            total=raw.total,
        )

    def query_page_raw(
        self,
        query_filter: Mapping[str, Any] | None = None,
        *,
        sort_field: str = "createdDate",
        order: str = "ASC",
        limit: int = MAX_PAGE,
        offset: int = 0,
        fields: Sequence[str] | None = None,
        fieldsets: Sequence[str] | None = None,
        search: str | None = None,
    ) -> RawContactPage:
        """``query_page`` without parsing: each contact is the wire object exactly as Wix sent it.

        For callers that keep records verbatim and handle a malformed contact one by one (the
        extractor dead-letters it and goes on with the rest of the page).
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}")
        query: dict[str, Any] = {
            "sort": [{"fieldName": sort_field, "order": order}],
            "paging": {"limit": limit, "offset": offset},
        }
        if query_filter:
            query["filter"] = dict(query_filter)
        if fields:
            query["fields"] = list(fields)
        if fieldsets:
            query["fieldsets"] = list(fieldsets)
        payload: dict[str, Any] = {"query": query}
        if search is not None:
            payload["search"] = search
        body = self._call("POST", f"{CONTACTS}/query", "query", json=payload, idempotent=True)
        raw = body.get("contacts")
        if not isinstance(raw, list):
            raise ContractError("wix query: response has no contacts list")
        meta = body.get("pagingMetadata") if isinstance(body.get("pagingMetadata"), dict) else {}
        assert isinstance(meta, dict)
        # ``total`` is an estimate when Wix says it had too many to count: not a paging bound.
        total = None if meta.get("tooManyToCount") is True else meta.get("total")
        count = meta.get("count", len(raw))
        return RawContactPage(
            contacts=raw,
            count=count if isinstance(count, int) else len(raw),
            offset=int(meta.get("offset", offset)),
            total=int(total) if isinstance(total, int) else None,
        )

    def iter_query(
        self,
        query_filter: Mapping[str, Any] | None = None,
        *,
        sort_field: str = "createdDate",
        order: str = "ASC",
        page_size: int = MAX_PAGE,
        fields: Sequence[str] | None = None,
        fieldsets: Sequence[str] | None = None,
    ) -> Iterator[Contact]:
        """Every matching contact, page by page (offset paging; ids de-duplicated).

        Offset paging is not a snapshot: a contact deleted while paging shifts later ones by one
        and one may be missed — the extractor's reconciliation covers that. A short page is not
        the end (the server may clamp ``page_size``): see ``last_page``.
        """
        offset = 0
        seen: set[str] = set()
        while True:
            page = self.query_page(
                query_filter,
                sort_field=sort_field,
                order=order,
                limit=page_size,
                offset=offset,
                fields=fields,
                fieldsets=fieldsets,
            )
            for contact in page.contacts:
                if contact.id not in seen:
                    seen.add(contact.id)
                    yield contact
            offset += len(page.contacts)
            if last_page(len(page.contacts), offset, page.total):
                return

    def iter_updated_since(
        self, since: datetime | str | None, *, inclusive: bool = False, page_size: int = MAX_PAGE
    ) -> Iterator[Contact]:
        """Contacts with ``updatedDate`` after ``since`` (all when None), sorted createdDate ASC.

        ``updatedDate`` has millisecond precision and cannot be sorted: track the maximum seen and
        prefer ``inclusive=True`` (``$gte``) with de-duplication by ``(id, revision)``.
        """
        query_filter: dict[str, Any] | None = None
        if since is not None:
            op = "$gte" if inclusive else "$gt"
            query_filter = {"updatedDate": {op: _iso(since)}}
        return self.iter_query(query_filter, page_size=page_size)

    def find_by_email(self, email: str) -> list[Contact]:
        """Contacts having ``email`` among their emails (Wix matches e-mails case-insensitively)."""
        return list(self.iter_query({"info.emails.email": {"$eq": email.strip()}}))

    def find_by_extended_field(self, key: str, value: str | int | float) -> list[Contact]:
        """Contacts whose extended field ``key`` (``custom.tether-link-id``) equals ``value``."""
        return list(self.iter_query({f"info.extendedFields.{key}": {"$eq": value}}))

    def list_extended_fields(
        self, namespace: str = "custom", limit: int = 100
    ) -> list[dict[str, Any]]:
        """One page of extended field definitions (``GET /contacts/v4/extended-fields``): a read
        that needs the same permission as defining one, so ``tether doctor`` checks it here."""
        body = self._call(
            "GET",
            EXTENDED_FIELDS,
            "extended_fields",
            params=[
                ("namespace", namespace),
                ("paging.limit", str(limit)),
                ("paging.offset", "0"),
            ],
            idempotent=True,
        )
        fields = body.get("fields")
        if not isinstance(fields, list):
            raise ContractError("wix extended fields: response has no fields list")
        return [f for f in fields if isinstance(f, dict)]

    def find_or_create_extended_field(self, display_name: str, data_type: str = "TEXT") -> str:
        """The key (``custom.…``) of the custom extended field with this display name."""
        body = self._call(
            "POST",
            EXTENDED_FIELDS,
            "extended_fields",
            json={"displayName": display_name, "dataType": data_type},
            idempotent=True,
        )
        field = body.get("field")
        key = field.get("key") if isinstance(field, dict) else None
        if not isinstance(key, str):
            raise ContractError("wix extended field: response has no field.key")
        return key

    # -- transport ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        idempotent: bool,
        gone_after_retry_ok: bool = False,
    ) -> dict[str, Any]:
        retries = _Retries(
            idempotent=idempotent,
            max_failures=self._max_attempts - 1,
            max_throttled=self._max_rate_limit_retries,
            app_auth=isinstance(self._auth, AppAuth),
        )
        retrying = Retrying(
            retry=lambda state: retries.allow(_exception(state)),
            wait=lambda state: self._delay(_exception(state), retries),
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "wix %s retrying after %s (attempt %d)",
                operation,
                _describe(_exception(state)),
                state.attempt_number,
            ),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                try:
                    return self._send(method, path, operation, json, params)
                except NotFoundError:
                    if gone_after_retry_ok and attempt.retry_state.attempt_number > 1:
                        return {}
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _delay(self, exc: BaseException | None, retries: _Retries) -> float:
        if isinstance(exc, RateLimitedError):
            base = exc.retry_after if exc.retry_after is not None else self._rate_limit_wait
            return base + self._random.uniform(0.0, min(1.0, 0.1 * base + 0.05))
        if isinstance(exc, AuthenticationError):
            return 0.0
        capped = min(self._backoff_max, self._backoff_initial * 2 ** max(0, retries.failures - 1))
        return self._random.uniform(capped / 2, capped)

    def _send(
        self,
        method: str,
        path: str,
        operation: str,
        json: Mapping[str, Any] | None,
        params: Sequence[tuple[str, str]] | None,
    ) -> dict[str, Any]:
        headers = self._auth_headers()
        self._budget.acquire()
        started = time.monotonic()
        try:
            response = self._http.request(
                method,
                self._fixed_urls.get(path, path),
                json=json,
                params=list(params) if params else None,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            self._observe(operation, 0, started)
            raise _transport_error(operation, exc) from None
        self._observe(operation, response.status_code, started)
        if response.is_success:
            return _json_object(response, operation)
        if response.status_code == 401 and isinstance(self._auth, AppAuth):
            with self._token_lock:
                self._token = None
        error = _api_error(response, operation)
        if isinstance(error, RateLimitedError):
            # The shared budget slows down and holds every caller as long as this one waits.
            wait = error.retry_after if error.retry_after is not None else self._rate_limit_wait
            self._budget.note_throttled(wait)
        raise error

    def _observe(self, operation: str, status: int, started: float) -> None:
        seconds = time.monotonic() - started
        log.debug("wix %s -> %s in %.3fs", operation, status or "no response", seconds)
        if self._on_request is not None:
            self._on_request(SYSTEM, operation, status, seconds)

    def _auth_headers(self) -> dict[str, str]:
        if isinstance(self._auth, ApiKeyAuth):
            return {
                "Authorization": self._auth.api_key.get_secret_value(),
                "wix-site-id": self._auth.site_id,
            }
        return {"Authorization": self._access_token(self._auth)}

    def _access_token(self, auth: AppAuth) -> str:
        with self._token_lock:
            if self._token is not None and time.monotonic() < self._token_renew_at:
                return self._token
            started = time.monotonic()
            try:
                response = self._http.post(
                    "/oauth2/token",
                    json={
                        "grant_type": "client_credentials",
                        "client_id": auth.app_id,
                        "client_secret": auth.app_secret.get_secret_value(),
                        "instance_id": auth.instance_id,
                    },
                )
            except httpx.HTTPError as exc:
                self._observe("token", 0, started)
                raise RequestNotSentError(
                    f"wix token request failed: {type(exc).__name__}"
                ) from None
            self._observe("token", response.status_code, started)
            if response.status_code in (400, 401, 403):
                raise AuthenticationError(
                    "token request refused the app credentials",
                    system=SYSTEM,
                    status=response.status_code,
                    error_code=_code_of(response),
                )
            if not response.is_success:
                raise RequestNotSentError(f"wix token request failed status={response.status_code}")
            body = _json_object(response, "token")
            token, expires_in = body.get("access_token"), body.get("expires_in", 14400)
            if not isinstance(token, str) or not isinstance(expires_in, (int, float)):
                raise ContractError("wix token response has no access_token/expires_in")
            self._token = token
            self._token_renew_at = renew_at(started, float(expires_in))
            return token


# -- pure helpers ---------------------------------------------------------------------------


def last_page(received: int, offset_after: int, total: int | None) -> bool:
    """Whether offset paging is done after a page of ``received`` contacts ending at
    ``offset_after``: an empty page, or a counted ``total`` reached. A short page alone proves
    nothing — Wix (or a proxy) may return fewer than the ``limit`` asked for."""
    return received == 0 or (total is not None and offset_after >= total)


def _iso(moment: datetime | str) -> str:
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError("cursor datetimes must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _segment(contact_id: str) -> str:
    if not contact_id or "/" in contact_id or contact_id in (".", ".."):
        raise ValueError("invalid contact id")
    return contact_id


def _exception(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, ApiError):
        return f"{type(exc).__name__} status={exc.status}"
    return type(exc).__name__


def _contact_of(body: dict[str, Any], operation: str) -> Contact:
    if "contact" not in body:
        raise ContractError(f"wix {operation}: response has no contact")
    return parse_contact(body["contact"])


def _json_object(response: httpx.Response, operation: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ContractError(f"wix {operation}: response is not JSON") from None
    if not isinstance(body, dict):
        raise ContractError(f"wix {operation}: response is not a JSON object")
    return body


def _transport_error(operation: str, exc: httpx.HTTPError) -> TransportError:
    not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    cls = RequestNotSentError if not_sent else TransportError
    return cls(f"wix {operation}: {type(exc).__name__}")


def _code_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    details = body.get("details") if isinstance(body, dict) else None
    app = details.get("applicationError") if isinstance(details, dict) else None
    code = app.get("code") if isinstance(app, dict) else None
    return code if isinstance(code, str) else None


def _api_error(response: httpx.Response, operation: str) -> ApiError:
    """Map an error response; keep only ids and field names from Wix's error data."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    details = _dict(body.get("details") if isinstance(body, dict) else None)
    app = _dict(details.get("applicationError"))
    code = app.get("code") if isinstance(app.get("code"), str) else None
    raw_data = _dict(app.get("data"))
    data: dict[str, Any] = {
        k: v for k, v in raw_data.items() if k.endswith("Id") or k.endswith("Ids")
    }
    validation = details.get("validationError")
    if isinstance(validation, dict) and isinstance(validation.get("fieldViolations"), list):
        data["fields"] = [
            v.get("field") for v in validation["fieldViolations"] if isinstance(v, dict)
        ]
        code = code or "INVALID_ARGUMENT"
    message = f"{operation} failed"
    common: dict[str, Any] = {"system": SYSTEM, "status": status, "error_code": code, "data": data}
    if status == 409 and code == "DUPLICATE_CONTACT_EXISTS":
        dup = raw_data.get("duplicateContactId")
        return DuplicateContactError(
            message, duplicate_contact_id=dup if isinstance(dup, str) else None, **common
        )
    if status == 429:
        return RateLimitedError(message, retry_after=_retry_after(response), **common)
    cls: type[ApiError]
    if status == 400 or status == 422 or status == 428:
        cls = ValidationError
    elif status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDeniedError
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ConflictError
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(message, **common)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())

"""The production API clients for ``tether doctor`` / ``tether preview``, built from the settings
the services read, with an observing HTTP transport.

``ObservingTransport`` wraps httpx's own transport and records, per exchange, the status, the
``Date`` header (with the local time the response arrived), the rate-limit headers, and — for a
successful token response — the ``expires_in`` it announced. It never changes a request or a
response and never records a header value that could be a credential: only ``Date``, the
rate-limit headers and the lifetime number are kept. The clients are the unchanged production
clients: the same code runs against the real APIs and the simulators.

Imports: httpx, pydantic, the connectors' production clients, the core budget module and the
services' settings classes.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx

from services.connectors.poweroffice.client import (
    PowerOfficeClient,
    RetryPolicy,
    missing_credentials,
    require_credentials,
)
from services.connectors.wix.client import (
    WixClient,
    auth_from_settings,
)
from services.core.budget import ApiBudget
from services.core.settings import PowerOfficeSettings, WixSettings
from services.onboarding.checks import rate_limit_headers

TOKEN_PATHS = ("/oauth/token", "/oauth2/token")


@dataclass(frozen=True)
class Exchange:
    path: str
    status: int
    date: str | None
    received_at: float  # local epoch seconds
    rate_limits: dict[str, str]
    token_lifetime: float | None = None


@dataclass
class ObservingTransport(httpx.BaseTransport):
    """An httpx transport recording what the doctor measures (see the module docstring)."""

    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        received = time.time()
        path = request.url.path
        lifetime: float | None = None
        if path.lower().endswith(TOKEN_PATHS) and response.status_code == 200:
            response.read()  # cached on the response: the client reads the same bytes
            try:
                body = json.loads(response.content)
            except ValueError:
                body = None
            value = body.get("expires_in") if isinstance(body, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                lifetime = float(value)
        exchange = Exchange(
            path=path,
            status=response.status_code,
            date=response.headers.get("date"),
            received_at=received,
            rate_limits=rate_limit_headers(response.headers),
            token_lifetime=lifetime,
        )
        with self._lock:
            self.exchanges.append(exchange)
        return response

    def close(self) -> None:
        self.inner.close()

    def last(self, *, token: bool | None = None) -> Exchange | None:
        with self._lock:
            for exchange in reversed(self.exchanges):
                is_token = exchange.path.lower().endswith(TOKEN_PATHS)
                if token is None or token == is_token:
                    return exchange
        return None

    def token_lifetime(self) -> float | None:
        with self._lock:
            for exchange in reversed(self.exchanges):
                if exchange.token_lifetime is not None:
                    return exchange.token_lifetime
        return None

    def throttled(self) -> int:
        with self._lock:
            return sum(1 for e in self.exchanges if e.status == 429)

    def rate_limits(self) -> dict[str, str]:
        with self._lock:
            seen: dict[str, str] = {}
            for exchange in self.exchanges:
                seen.update(exchange.rate_limits)
            return seen


poweroffice_keys_missing = missing_credentials  # the client's own rule


def poweroffice_budget(settings: PowerOfficeSettings) -> ApiBudget:
    """This process's share of the PowerOffice limit (10 requests/s per subscription key)."""
    per_second = settings.poweroffice_requests_per_second * settings.poweroffice_budget_share
    return ApiBudget.for_rate("poweroffice-onboarding", per_second, 1.0)


def wix_budget(settings: WixSettings) -> ApiBudget:
    """This process's share of the Wix limit (200 requests/min per instance)."""
    per_minute = settings.wix_requests_per_minute * settings.wix_budget_share
    return ApiBudget.for_rate("wix-onboarding", per_minute, 60.0)


def poweroffice_client(
    settings: PowerOfficeSettings, transport: httpx.BaseTransport | None = None
) -> PowerOfficeClient:
    require_credentials(settings)
    return PowerOfficeClient(
        application_key=settings.poweroffice_app_key,
        client_key=settings.poweroffice_client_key,
        subscription_key=settings.poweroffice_subscription_key,
        budget=poweroffice_budget(settings),
        base_url=settings.poweroffice_base_url,
        token_url=settings.poweroffice_token_url,
        retry=RetryPolicy(max_attempts=3),
        transport=transport,
    )


def wix_client(settings: WixSettings, transport: httpx.BaseTransport | None = None) -> WixClient:
    return WixClient(
        auth_from_settings(settings),
        wix_budget(settings),
        base_url=settings.wix_base_url,
        max_attempts=3,
        max_rate_limit_retries=5,
        transport=transport,
    )

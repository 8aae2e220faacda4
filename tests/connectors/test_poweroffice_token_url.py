"""The PowerOffice token URL follows the base URL unless it is set: one setting, not two.

An operator who points ``TETHER_POWEROFFICE_BASE_URL`` at the demo environment must not also have
to remember ``TETHER_POWEROFFICE_TOKEN_URL`` (before: the token was fetched from production and
refused, docs/operations.md). URLs: /work/shared/reference/poweroffice-go-v2.md §1.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.client import (
    DEMO_BASE_URL,
    DEMO_TOKEN_URL,
    PRODUCTION_BASE_URL,
    PRODUCTION_TOKEN_URL,
    PowerOfficeClient,
    token_url_for,
)
from services.core.budget import ApiBudget
from services.core.errors import ConfigurationError
from services.core.settings import PowerOfficeSettings


def test_the_token_url_is_derived_from_the_documented_base_urls() -> None:
    assert token_url_for(PRODUCTION_BASE_URL) == PRODUCTION_TOKEN_URL
    assert token_url_for(DEMO_BASE_URL) == DEMO_TOKEN_URL
    assert token_url_for("https://goapi.poweroffice.net/demo/v2/") == (
        "https://goapi.poweroffice.net/demo/OAuth/Token"
    )
    assert token_url_for("http://127.0.0.1:8081/v2") == "http://127.0.0.1:8081/OAuth/Token"
    with pytest.raises(ConfigurationError, match="TETHER_POWEROFFICE_TOKEN_URL"):
        token_url_for("https://goapi.poweroffice.net/")  # no "/v2": no guess


def test_settings_leave_the_token_url_unset_unless_it_is_given() -> None:
    assert PowerOfficeSettings().poweroffice_token_url is None
    given = PowerOfficeSettings(poweroffice_token_url="https://proxy.example/token")
    assert given.poweroffice_token_url == "https://proxy.example/token"


def test_the_client_fetches_its_token_from_the_demo_token_url_with_only_the_demo_base_url() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("/OAuth/Token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 600})
        return httpx.Response(200, json=[])

    client = PowerOfficeClient(
        application_key=SecretStr("a"),
        client_key=SecretStr("c"),
        subscription_key=SecretStr("s"),
        budget=ApiBudget("po-token-url-test", 0, 1),
        base_url=DEMO_BASE_URL,
        token_url=PowerOfficeSettings(poweroffice_base_url=DEMO_BASE_URL).poweroffice_token_url,
        transport=httpx.MockTransport(handler),
    )
    with client:
        list(client.resource("employees").list())
    assert seen[0] == DEMO_TOKEN_URL
    assert seen[1].startswith(DEMO_BASE_URL + "/")

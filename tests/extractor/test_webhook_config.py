"""Without a webhook public key the webhook route is not served — never silently.

Before: the extractor logged one INFO line ("polling only") and served no route, even for an
installed Wix app whose webhooks were expected; an operator saw nothing wrong while every Wix
change waited for the next poll. Now: webhooks expected (``TETHER_WIX_WEBHOOKS_ENABLED=true``, or
unset with an installed app: app id + instance id) and no key -> the start-up fails and names
the settings to set; not expected -> one WARNING naming the polling interval.
"""

from __future__ import annotations

import json

import pytest

from services.connectors.wix.receiver import PATH
from services.core.errors import ConfigurationError
from services.core.service import ServiceContext
from services.extractor.main import main
from services.extractor.service import Extractor
from tests.extractor.support import Harness


def _logs(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_expected_webhooks_without_a_key_stop_the_start_up(harness: Harness) -> None:
    for overrides in (
        {"wix_webhooks_enabled": True},
        {"wix_app_id": "app-1", "wix_instance_id": "inst-1"},  # an installed app: expected
    ):
        settings = harness.settings(**overrides)
        assert settings.webhooks_expected()
        ctx = ServiceContext.create("extractor", settings, install_signals=False)
        try:
            with pytest.raises(ConfigurationError, match="TETHER_WIX_WEBHOOK_PUBLIC_KEY"):
                Extractor(ctx, settings)
        finally:
            assert ctx.runtime.public is not None
            ctx.runtime.public.stop()
            ctx.close()


def test_the_process_exits_2_with_the_reason(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in harness.settings().model_dump(mode="json").items():
        if value is not None and not isinstance(value, (dict, list)):
            secret = getattr(harness.settings(), key)
            raw = secret.get_secret_value() if hasattr(secret, "get_secret_value") else value
            monkeypatch.setenv(f"TETHER_{key.upper()}", str(raw))
    monkeypatch.setenv("TETHER_WIX_WEBHOOKS_ENABLED", "true")
    monkeypatch.setenv("TETHER_SECRETS_DIR", "/nonexistent")
    assert main([]) == 2
    [error] = [e for e in _logs(capsys.readouterr().err) if e["level"] == "error"]
    assert "no webhook public key is configured" in str(error["msg"])


def test_unexpected_webhooks_without_a_key_are_a_warning_naming_the_poll_interval(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    extractor = harness.extractor(start=False, http=True, wix_poll_interval_seconds=45)
    warnings = [e for e in _logs(capsys.readouterr().err) if e["level"] == "warning"]
    assert any(
        "Wix webhooks off" in str(e["msg"]) and "polling every 45 s" in str(e["msg"])
        for e in warnings
    ), warnings
    assert extractor.receiver is None
    assert extractor.ctx.runtime.public is not None
    assert not extractor.ctx.runtime.public.serving


def test_webhooks_switched_off_serve_no_route_even_with_a_key(harness: Harness) -> None:
    extractor = harness.extractor(
        start=False,
        wix_webhooks_enabled=False,
        wix_webhook_public_key=harness.wix.signer.public_key_pem,
    )
    assert extractor.receiver is None
    assert extractor.ctx.runtime.public is not None
    assert PATH not in extractor.ctx.runtime.public.routes

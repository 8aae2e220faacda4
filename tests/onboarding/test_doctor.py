"""``tether doctor`` against both simulators over real HTTP: healthy, a wrong PowerOffice key, a
Wix key refused the extended fields, a read-only Wix key, webhook set-up; secrets never printed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.connectors.poweroffice.simulator import PowerOfficeSimulator, SimulatorLimits
from services.connectors.simkit import FaultRule, ServerThread
from services.connectors.wix.simulator import WixSimulator
from services.connectors.wix.simwebhooks import WebhookSigner
from services.connectors.wix.webhooks import WebhookRejectedError, verify_and_parse
from services.onboarding import doctor
from tests.onboarding.conftest import WIX_API_KEY, Sims, start


def run_doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = doctor.main(["--json", *args])
    out = capsys.readouterr().out
    return code, {c["name"]: c for c in json.loads(out)["checks"]}


def signed_sample(signer: WebhookSigner, tmp_path: Path) -> Path:
    """A contact-created delivery body, signed the way the simulator (and Wix) sign them."""
    event = {
        "id": "evt-1",
        "entityFqdn": "wix.contacts.v4.contact",
        "slug": "created",
        "entityId": "c-1",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "triggeredByAnonymizeRequest": False,
        "createdEvent": {
            "entity": {
                "id": "c-1",
                "revision": 1,
                "createdDate": "2026-01-01T00:00:00.000Z",
                "updatedDate": "2026-01-01T00:00:00.000Z",
                "info": {"name": {"first": "Kari"}},
            }
        },
    }
    envelope = {
        "eventType": "wix.contacts.v4.contact_created",
        "instanceId": "i-1",
        "data": json.dumps(event),
        "identity": json.dumps({"identityType": "APP", "appId": "a-1"}),
    }
    path = tmp_path / "sample.jwt"
    path.write_text(signer.envelope_jwt(envelope, iat=int(time.time())))
    return path


def test_healthy_simulators_pass_every_check(
    sims: Sims,
    environment: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "wix-public.pem"
    key_file.write_text(sims.wix.signer.public_key_pem)
    monkeypatch.setenv("TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE", str(key_file))
    sample = signed_sample(sims.wix.signer, tmp_path)

    code, checks = run_doctor(capsys, "--webhook-sample", str(sample))

    assert {name: c["status"] for name, c in checks.items()} == {
        "poweroffice.credentials": "OK",
        "poweroffice.token": "OK",
        "poweroffice.token_renewal": "OK",
        "poweroffice.read.employees": "OK",
        "poweroffice.read.customers": "OK",
        "poweroffice.read.contactpersons": "OK",
        "clock.poweroffice": "OK",
        "rate_limit.poweroffice": "OK",
        "wix.credentials": "OK",
        "wix.read": "OK",
        "wix.write": "OK",
        "wix.extended_fields": "OK",
        "clock.wix": "OK",
        "rate_limit.wix": "OK",
        "webhook.key": "OK",
        "webhook.sample": "OK",
    }
    assert code == 0
    # The token's real lifetime (the simulator's 1200 s) and the renewal rule's 60 s cap.
    assert (
        "lifetime 1200 s, renewed 60 s before expiry"
        in checks["poweroffice.token_renewal"]["detail"]
    )
    assert "limit 10 requests/s" in checks["rate_limit.poweroffice"]["detail"]
    assert "limit 200 requests/min" in checks["rate_limit.wix"]["detail"]


def test_wrong_poweroffice_client_key_fails_naming_the_setting(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TETHER_POWEROFFICE_CLIENT_KEY", "not-the-client-key-123")

    code, checks = run_doctor(capsys)

    assert code == 1
    token = checks["poweroffice.token"]
    assert token["status"] == "FAIL"
    assert "TETHER_POWEROFFICE_CLIENT_KEY" in token["fix"]
    assert "poweroffice.read.employees" not in checks  # nothing else is tried without a token
    assert checks["wix.read"]["status"] == "OK"  # the other system is still checked


@pytest.fixture
def refusing_sims() -> Iterator[Sims]:
    """The Wix key lacks the extended-fields permission (simulator realism option)."""
    yield from start(
        PowerOfficeSimulator(limits=SimulatorLimits()),
        WixSimulator(api_key=WIX_API_KEY, extended_fields_refused=403),
    )


def test_wix_extended_fields_refused_fails_naming_the_permission(
    refusing_sims: Sims,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in refusing_sims.env(tmp_path).items():
        monkeypatch.setenv(key, value)

    code, checks = run_doctor(capsys)

    assert code == 1
    fields = checks["wix.extended_fields"]
    assert fields["status"] == "FAIL"
    assert "403" in fields["detail"]
    assert "Manage Contacts \u2013 extended fields" in fields["fix"]
    assert checks["wix.read"]["status"] == "OK"
    # The check only reads: no extended field was defined.
    assert refusing_sims.wix.store.extended_fields == {}


def test_read_only_wix_key_fails_the_write_check(
    sims: Sims,
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sims.wix.read_only_api_key is not None
    monkeypatch.setenv("TETHER_WIX_API_KEY", sims.wix.read_only_api_key)

    code, checks = run_doctor(capsys)

    assert code == 1
    assert checks["wix.read"]["status"] == "OK"
    assert checks["wix.write"]["status"] == "FAIL"
    assert "Manage Contacts" in checks["wix.write"]["fix"]
    assert sims.wix.store.contacts == {} or len(sims.wix.store.contacts) == 0


def test_wrong_wix_key_fails_naming_the_settings(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TETHER_WIX_API_KEY", "a-wrong-wix-key-456")

    code, checks = run_doctor(capsys)

    assert code == 1
    assert checks["wix.read"]["status"] == "FAIL"
    assert "TETHER_WIX_API_KEY" in checks["wix.read"]["fix"]


def test_webhook_key_missing_warns_polling_and_a_foreign_signature_fails(
    sims: Sims,
    environment: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, checks = run_doctor(capsys)
    assert code == 0
    assert checks["webhook.key"]["status"] == "WARN"
    assert "polling" in checks["webhook.key"]["detail"]

    key_file = tmp_path / "wix-public.pem"
    key_file.write_text(sims.wix.signer.public_key_pem)
    monkeypatch.setenv("TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE", str(key_file))
    foreign = signed_sample(WebhookSigner(), tmp_path)  # another app's key signed it
    code, checks = run_doctor(capsys, "--webhook-sample", str(foreign))
    assert code == 1
    assert checks["webhook.sample"]["status"] == "FAIL"
    assert "bad_signature" in checks["webhook.sample"]["detail"]

    key_file.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    code, checks = run_doctor(capsys)
    assert code == 1
    assert checks["webhook.key"]["status"] == "FAIL"


def test_output_never_contains_a_secret(
    environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert doctor.main([]) == 0
    out = capsys.readouterr()
    secrets = [
        environment[k]
        for k in (
            "TETHER_POWEROFFICE_APP_KEY",
            "TETHER_POWEROFFICE_CLIENT_KEY",
            "TETHER_POWEROFFICE_SUBSCRIPTION_KEY",
            "TETHER_WIX_API_KEY",
        )
    ]
    for secret in secrets:
        assert secret not in out.out
        assert secret not in out.err


def test_a_resource_the_integration_may_not_read_fails_naming_it(
    sims: Sims,
    environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """PowerOffice answers 403 when the integration lacks a privilege (reference §3): the token
    is still fine, the refused resource FAILs by name, the others are still checked."""
    sims.poweroffice.add_fault(
        FaultRule(
            "status",
            path=r"/v2/Employees$",
            method="GET",
            status=403,
            body=b'{"title":"Forbidden","status":403}',
        )
    )

    code, checks = run_doctor(capsys)

    assert code == 1
    assert checks["poweroffice.token"]["status"] == "OK"
    refused = checks["poweroffice.read.employees"]
    assert refused["status"] == "FAIL"
    assert "403" in refused["detail"]
    assert "employees" in refused["fix"]
    assert checks["poweroffice.read.customers"]["status"] == "OK"
    assert checks["poweroffice.read.contactpersons"]["status"] == "OK"


def test_webhook_url_probe_expects_a_401_for_a_forged_jwt(
    sims: Sims,
    environment: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--webhook-url`` posts a JWT nobody signed: the receiver must answer 401 (reachable and
    verifying); an endpoint that accepts it, or none at all, FAILs."""
    key_file = tmp_path / "wix-public.pem"
    key_file.write_text(sims.wix.signer.public_key_pem)
    monkeypatch.setenv("TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE", str(key_file))
    pem = sims.wix.signer.public_key_pem

    async def receiver(request: Request) -> Response:  # verifies as the extractor does
        try:
            verify_and_parse(await request.body(), pem)
        except WebhookRejectedError:
            return Response(status_code=401)
        return Response(status_code=200)

    async def accepts_anything(request: Request) -> Response:
        return Response(status_code=200)

    app = Starlette(
        routes=[
            Route("/webhooks/wix", receiver, methods=["POST"]),
            Route("/open", accepts_anything, methods=["POST"]),
        ]
    )
    with ServerThread(app) as server:
        code, checks = run_doctor(capsys, "--webhook-url", f"{server.url}/webhooks/wix")
        assert code == 0
        assert checks["webhook.reachable"]["status"] == "OK"

        code, checks = run_doctor(capsys, "--webhook-url", f"{server.url}/open")
        assert code == 1
        assert checks["webhook.reachable"]["status"] == "FAIL"
        gone = server.url
    code, checks = run_doctor(capsys, "--webhook-url", f"{gone}/webhooks/wix")
    assert code == 1
    assert checks["webhook.reachable"]["status"] == "FAIL"
    assert "public HTTPS" in checks["webhook.reachable"]["fix"]

"""``tether doctor``: is this configuration ready for a live sync? One line per check.

Reads the settings the services read (``TETHER_*`` variables and secret files: the extractor's
for credentials, webhook key and polling, the loader's for the Wix link field) and checks, with
the unchanged production clients, against the real APIs (or the simulators):

PowerOffice Go
    ``poweroffice.credentials`` the three keys are set; ``poweroffice.token`` the token endpoint
    accepts them (a wrong client key -> FAIL naming ``TETHER_POWEROFFICE_CLIENT_KEY``);
    ``poweroffice.token_renewal`` the token's lifetime and when the client renews it;
    ``poweroffice.read.<resource>`` one record of each synced resource can be read.
Wix
    ``wix.credentials`` API key + site id or app credentials are set; ``wix.read`` Query
    Contacts answers (Read Contacts); ``wix.write`` the key may update contacts (Manage
    Contacts) — probed with an update of a contact id that does not exist, so nothing can change
    (404 = allowed, 403 = refused; that Wix checks the permission before the id is UNCONFIRMED);
    ``wix.extended_fields`` the Extended Fields API answers a *list* (never a define): 403 ->
    FAIL naming the permission "Manage Contacts - extended fields"; ``wix.token_renewal`` (app
    credentials only).
Webhooks
    ``webhook.key`` the public key is configured and is an RSA public key (none -> WARN: polling
    only, unless the extractor expects webhooks, then FAIL); ``webhook.sample`` (with
    ``--webhook-sample FILE``: a JWT body as Wix sent it) verifies with that key;
    ``webhook.reachable`` (with ``--webhook-url URL``: the public URL Wix will call) answers a
    forged JWT with 401 — reachable, and refusing what it cannot verify.
Clock and budgets
    ``clock.<system>`` the APIs' ``Date`` header against this host's clock (WARN above
    ``--max-clock-skew`` seconds); ``rate_limit.<system>`` the configured limit and share against
    the rate-limit headers the API sent (if any) and the 429s met during the checks.

Exit code 1 when any check FAILs (WARN does not fail), 2 for unusable settings. ``--json`` prints
the checks as JSON. Secrets are never printed: checks name settings, statuses and error codes.

Imports: httpx, cryptography, the connectors' clients and webhook verifier, the extractor's and
loader's settings, and this package's ``checks`` / ``wiring``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.connectors.poweroffice.client import PowerOfficeClient
from services.connectors.poweroffice.models import RESOURCES
from services.connectors.wix.client import AppAuth, WixClient, auth_from_settings
from services.connectors.wix.webhooks import WebhookRejectedError, verify_and_parse
from services.core.errors import ConfigurationError, NotFoundError, TetherError
from services.core.settings import PowerOfficeSettings, WixSettings
from services.core.tokens import DEFAULT_CAP_SECONDS, DEFAULT_FRACTION
from services.extractor.settings import ExtractorSettings
from services.loader.settings import LoaderSettings
from services.onboarding import checks
from services.onboarding.checks import Check, fail, ok, warn
from services.onboarding.wiring import (
    ObservingTransport,
    poweroffice_client,
    poweroffice_keys_missing,
    wix_client,
)

PO_RESOURCES = RESOURCES
"""The API's resource names, in the connector's order."""
PO_CREDENTIALS_FIX = (
    "check TETHER_POWEROFFICE_CLIENT_KEY (the key of this PowerOffice Go client's integration), "
    "then TETHER_POWEROFFICE_APP_KEY and TETHER_POWEROFFICE_SUBSCRIPTION_KEY"
)
WIX_KEY_FIX = (
    "check TETHER_WIX_API_KEY and TETHER_WIX_SITE_ID (a key of the site owner's account; the "
    "site id is the GUID after /dashboard/ in the site's dashboard URL)"
)
WIX_APP_FIX = "check TETHER_WIX_APP_ID, TETHER_WIX_APP_SECRET and TETHER_WIX_INSTANCE_ID"
FORGED_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJkYXRhIjoie30iLCJleHAiOjF9.Zm9yZ2Vk"  # signs nothing


def _po_read(client: PowerOfficeClient, resource: str) -> int:
    """Read the first page (one record) of ``resource``; the number of records on it."""
    listing = client.resource(resource).list_wire(page_size=1)
    try:
        return 1 if next(listing, None) is not None else 0
    finally:
        close = getattr(listing, "close", None)
        if close is not None:
            close()


def check_poweroffice(settings: PowerOfficeSettings, max_skew: float) -> list[Check]:
    missing = poweroffice_keys_missing(settings)
    if missing:
        return [
            fail(
                "poweroffice.credentials",
                "not set: " + ", ".join(missing),
                "set them (environment or files tether_<name> in TETHER_SECRETS_DIR)",
            )
        ]
    result = [ok("poweroffice.credentials", "application, client and subscription keys set")]
    transport = ObservingTransport()
    with poweroffice_client(settings, transport) as client:
        for index, resource in enumerate(PO_RESOURCES):
            name = f"poweroffice.read.{resource}"
            error: TetherError | None = None
            found = 0
            try:
                found = _po_read(client, resource)  # the first call also fetches the token
            except TetherError as exc:
                error = exc
            if index == 0:
                if client.tokens_fetched == 0:
                    assert error is not None  # no token and no error: impossible
                    # No token: every later call would fail the same way.
                    result.append(
                        checks.api_failure(
                            "poweroffice.token",
                            error,
                            credentials=PO_CREDENTIALS_FIX,
                            permission=PO_CREDENTIALS_FIX,
                        )
                    )
                    return result
                result.append(ok("poweroffice.token", "the token endpoint accepted the keys"))
                result.append(
                    checks.token_renewal(
                        "poweroffice.token_renewal",
                        transport.token_lifetime(),
                        fraction=client.renew_fraction,
                        cap=client.renew_cap_seconds,
                        assumed=600,
                    )
                )
            if error is not None:
                result.append(
                    checks.api_failure(
                        name,
                        error,
                        credentials=PO_CREDENTIALS_FIX,
                        permission=f"grant the integration read access to {resource} in "
                        "PowerOffice Go (the client's integration privileges)",
                    )
                )
            else:
                result.append(ok(name, "readable" + ("" if found else " (no records yet)")))
    result += _clock_and_budget(
        "poweroffice",
        transport,
        max_skew,
        limit=settings.poweroffice_requests_per_second,
        unit="s",
        share=settings.poweroffice_budget_share,
    )
    return result


def check_wix(settings: WixSettings, link_field: str, max_skew: float) -> list[Check]:
    try:
        auth = auth_from_settings(settings)
    except ConfigurationError as exc:
        return [fail("wix.credentials", str(exc), "set them (environment or secret files)")]
    app = isinstance(auth, AppAuth)
    credentials_fix = WIX_APP_FIX if app else WIX_KEY_FIX
    kind = "app credentials" if app else "API key + site id"
    result = [ok("wix.credentials", f"{kind} set")]
    transport = ObservingTransport()
    with wix_client(settings, transport) as client:
        try:
            page = client.query_page_raw(limit=1)
        except TetherError as exc:
            result.append(
                checks.api_failure(
                    "wix.read",
                    exc,
                    credentials=credentials_fix,
                    permission="grant the key/app the permission 'Read Contacts' "
                    "(SCOPE.DC-CONTACTS.READ-CONTACTS)",
                )
            )
            return result
        total = "unknown" if page.total is None else str(page.total)
        result.append(ok("wix.read", f"Query Contacts answers ({total} contacts)"))
        if app:
            result.append(
                checks.token_renewal(
                    "wix.token_renewal",
                    transport.token_lifetime(),
                    fraction=DEFAULT_FRACTION,
                    cap=DEFAULT_CAP_SECONDS,
                    assumed=14400,
                )
            )
        result.append(_wix_write(client, credentials_fix))
        result.append(_wix_extended_fields(client, link_field, credentials_fix))
    result += _clock_and_budget(
        "wix",
        transport,
        max_skew,
        limit=settings.wix_requests_per_minute,
        unit="min",
        share=settings.wix_budget_share,
    )
    return result


def _wix_write(client: WixClient, credentials_fix: str) -> Check:
    name = "wix.write"
    probe = str(uuid.uuid4())  # no contact has this id: nothing can change
    try:
        client.update_info(probe, 1, {"name": {"first": "tether-doctor"}})
    except NotFoundError:
        return ok(name, "updates allowed (probe: update of a contact that does not exist -> 404)")
    except TetherError as exc:
        return checks.api_failure(
            name,
            exc,
            credentials=credentials_fix,
            permission="grant the permission 'Manage Contacts' (SCOPE.DC-CONTACTS.MANAGE-CONTACTS)",
        )
    return warn(
        name,
        "the probe update of a non-existent contact was accepted",
        "unexpected: check that TETHER_WIX_BASE_URL points at the Wix Contacts API",
    )


def _wix_extended_fields(client: WixClient, link_field: str, credentials_fix: str) -> Check:
    name = "wix.extended_fields"
    try:
        fields = client.list_extended_fields()
    except TetherError as exc:
        return checks.api_failure(
            name,
            exc,
            credentials=credentials_fix,
            permission=f"grant the key/app the permission "
            f"'{checks.WIX_EXTENDED_FIELDS_PERMISSION}': the loader keeps each link's id in the "
            f"extended field '{link_field}'",
        )
    defined = any(f.get("displayName") == link_field for f in fields)
    state = "defined" if defined else "not defined yet (the loader defines it on its first create)"
    return ok(name, f"Extended Fields API answers; link field '{link_field}' {state}")


def _clock_and_budget(
    system: str,
    transport: ObservingTransport,
    max_skew: float,
    *,
    limit: float,
    unit: str,
    share: float,
) -> list[Check]:
    last = transport.last(token=False) or transport.last()
    skew = checks.clock_skew(last.date, last.received_at) if last is not None else None
    return [
        checks.skew_check(f"clock.{system}", skew, max_skew),
        checks.rate_limit_check(
            f"rate_limit.{system}",
            limit=limit,
            unit=unit,
            share=share,
            seen=transport.rate_limits(),
            throttled=transport.throttled(),
        ),
    ]


def check_webhooks(
    settings: ExtractorSettings,
    sample: Path | None,
    url: str | None,
    post: Callable[[str, bytes], int] | None = None,
) -> list[Check]:
    try:
        pem = settings.webhook_public_key_pem()
    except ConfigurationError as exc:
        return [fail("webhook.key", str(exc), "fix TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE")]
    if pem is None:
        if settings.webhooks_expected():
            return [
                fail(
                    "webhook.key",
                    "webhooks are expected (app credentials) but no public key is configured",
                    "set TETHER_WIX_WEBHOOK_PUBLIC_KEY(_FILE) from the app dashboard (Webhooks "
                    "-> Get Public Key), or TETHER_WIX_WEBHOOKS_ENABLED=false to poll only",
                )
            ]
        seconds = settings.wix_poll_interval_seconds
        return [
            warn(
                "webhook.key",
                f"no public key: webhooks are off, Wix changes arrive by polling (every "
                f"{seconds:g} s)",
                "for changes within seconds install a Wix app, subscribe to the contact events "
                "and set TETHER_WIX_WEBHOOK_PUBLIC_KEY(_FILE)",
            )
        ]
    result: list[Check] = []
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        return [
            fail(
                "webhook.key",
                "the configured public key is not a PEM RSA public key",
                "copy the key again from the Wix app dashboard (Webhooks -> Get Public Key), "
                "including the BEGIN/END PUBLIC KEY lines",
            )
        ]
    result.append(ok("webhook.key", f"RSA public key ({key.key_size} bits) configured"))
    if sample is not None:
        result.append(_webhook_sample(pem, sample))
    if url is not None:
        result.append(_webhook_reachable(url, post or _post))
    return result


def _webhook_sample(pem: str, sample: Path) -> Check:
    name = "webhook.sample"
    try:
        body = sample.read_bytes()
    except OSError as exc:
        return fail(name, f"cannot read {sample} ({type(exc).__name__})", "pass a readable file")
    try:
        event = verify_and_parse(body, pem)
    except WebhookRejectedError as exc:
        if exc.reason == "expired":
            return warn(
                name,
                "the sample's signature was checked but the token has expired",
                "capture a fresh delivery (Wix: Webhooks -> Test) and run again",
            )
        return fail(
            name,
            f"the sample does not verify: {exc.reason}",
            "the key and the app do not match: copy the public key of the app that sends "
            "these webhooks",
        )
    except ConfigurationError as exc:
        return fail(name, str(exc), "copy the public key again from the Wix app dashboard")
    return ok(name, f"a signed {event.kind} event verifies with the configured key")


def _post(url: str, body: bytes) -> int:
    response = httpx.post(url, content=body, headers={"Content-Type": "text/plain"}, timeout=10)
    return response.status_code


def _webhook_reachable(url: str, post: Callable[[str, bytes], int]) -> Check:
    name = "webhook.reachable"
    try:
        status = post(url, FORGED_JWT.encode())
    except httpx.HTTPError as exc:
        return fail(
            name,
            f"{url} not reachable from here ({type(exc).__name__})",
            "Wix must reach the extractor's /webhooks/wix over public HTTPS: expose it "
            "(ingress / load balancer) and register that URL in the Wix app",
        )
    if status == 401:
        return ok(name, f"{url} answers and refuses a forged JWT (401)")
    if status == 503:
        return warn(name, f"{url} answers 503", "the extractor is still starting: run again")
    return fail(
        name,
        f"{url} answered {status} to a forged JWT (expected 401)",
        "point the URL at the extractor's /webhooks/wix route",
    )


def run(
    *, max_skew: float = 5.0, sample: Path | None = None, url: str | None = None
) -> list[Check]:
    """All checks with the settings of this environment."""
    extractor = ExtractorSettings.load()
    loader = LoaderSettings.load()
    result = check_poweroffice(extractor, max_skew)
    result += check_wix(extractor, loader.wix_link_field_name, max_skew)
    result += check_webhooks(extractor, sample, url)
    return result


def render(result: list[Check]) -> str:
    lines = []
    for check in result:
        lines.append(f"[{check.status.value:<4}] {check.name:<32} {check.detail}")
        if check.fix:
            lines.append(f"       {'':<32} fix: {check.fix}")
    failed = sum(1 for c in result if c.status is checks.Status.FAIL)
    warned = sum(1 for c in result if c.status is checks.Status.WARN)
    lines.append(f"\n{len(result)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tether doctor",
        description="Check credentials, token renewal, permissions, webhook set-up, clock skew "
        "and rate limits against the configured PowerOffice Go client and Wix site.",
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument(
        "--max-clock-skew", type=float, default=5.0, help="seconds before clock skew warns"
    )
    parser.add_argument(
        "--webhook-sample", type=Path, help="a webhook body (JWT) as Wix sent it, to verify"
    )
    parser.add_argument(
        "--webhook-url", help="the public webhook URL Wix calls (…/webhooks/wix), to probe"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = run(max_skew=args.max_clock_skew, sample=args.webhook_sample, url=args.webhook_url)
    if args.json:
        print(
            json.dumps(
                {
                    "checks": [c.as_dict() for c in result],
                    "failed": sum(1 for c in result if c.status is checks.Status.FAIL),
                    "seconds": round(time.monotonic() - started, 2),
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(render(result))
    sys.stdout.flush()
    return checks.exit_code(result)

"""``tether tenants``: register, list, show, pause, resume and remove tenants.

    tether tenants add ID --set wix_site_id=... [--set NAME=VALUE ...] --credentials secret:NAME
                          [--dataflow default] [--paused] [--reason TEXT]
    tether tenants list [--json] [--api URL]
    tether tenants show ID
    tether tenants set ID --set NAME=VALUE [...]
    tether tenants pause|resume|remove ID [--reason TEXT]
    tether tenants erase ID [--execute]

Every change is one record on the tenants topic, acknowledged before the command returns; the
running services pick it up without a restart. ``--set`` names a setting field of the services
(``tether config extractor`` lists them); secrets are refused there: they belong in the directory
the credentials reference names (``services/tenants/credentials.py``). ``remove`` stops the
tenant's work for good; ``tether tenants erase`` then deletes its data. The same operations are on
the console's API (``/api/v1/tenants``, docs/console.md). ``--by`` (default ``$USER``) is
recorded as who changed it. ``list --api URL`` reads through the console's API instead (with
``TETHER_CONSOLE_TOKEN``, any role): for operators who have a console token but no Kafka access.
``erase`` (``services/erase_command.py``) is a dry run that prints counts unless ``--execute``;
it is refused for a registered tenant that is not removed (a tenant the registry never held — a
single-tenant deployment's ``TETHER_TENANT`` — may be erased once its services are stopped).

Imports: the tenant model, credentials, overrides and registry, the core codec/settings, httpx and
the console's client and settings (this module is wiring: the services never import it).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

import httpx
import psycopg

from services.console.client import ClientError, ConsoleClient
from services.console.settings import ConsoleSettings
from services.core.errors import ConfigurationError, TransportError
from services.core.kafka import provision_topics
from services.core.schema_registry import codec_from
from services.core.settings import TetherSettings
from services.tenants import credentials, overrides
from services.tenants.model import (
    COMMAND_STATES,
    TenantError,
    describe,
    new_tenant,
)
from services.tenants.registry import TenantDirectory, TenantRegistry


def parse_sets(pairs: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise TenantError(f"--set expects NAME=VALUE, got {pair!r}")
        parsed[name.strip().lower()] = value
    return parsed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether tenants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--by", default=None, help="who makes the change (default: $USER)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="register a tenant (its work starts unless --paused)")
    add.add_argument("tenant")
    add.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    add.add_argument("--credentials", default="", help="secret:<name> or dir:<absolute path>")
    add.add_argument("--dataflow", default="default")
    add.add_argument("--paused", action="store_true", help="register without starting its work")
    add.add_argument("--reason", default="")
    listing = sub.add_parser("list", help="every tenant, its state and phase")
    listing.add_argument("--json", action="store_true")
    listing.add_argument(
        "--api",
        metavar="URL",
        help="read through the console's API at URL (token: TETHER_CONSOLE_TOKEN) instead of "
        "Kafka: for operators without access to the brokers",
    )
    show = sub.add_parser("show", help="one tenant's registration and status (JSON)")
    show.add_argument("tenant")
    change = sub.add_parser("set", help="change a tenant's setting overrides")
    change.add_argument("tenant")
    change.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", required=True)
    change.add_argument("--reason", default="")
    for name, text in (
        ("pause", "stop a tenant's work (resume picks up every change made meanwhile)"),
        ("resume", "start a paused tenant's work again"),
        ("remove", "stop a tenant's work for good (then: tether tenants erase)"),
    ):
        one = sub.add_parser(name, help=text)
        one.add_argument("tenant")
        one.add_argument("--reason", default="")
    erase = sub.add_parser(
        "erase",
        help="delete a removed tenant's rows from PostgreSQL and tombstone its compacted keys",
        description="Offboarding erasure. A dry run unless --execute: prints counts only. Remove "
        "the tenant and let its topics drain first (docs/tenants.md).",
    )
    erase.add_argument("tenant")
    erase.add_argument("--execute", action="store_true", help="erase (default: count only)")
    return parser


def erase_main(args: argparse.Namespace, settings: TetherSettings, out: Any) -> int:
    """``tether tenants erase``: refused unless the tenant is removed or was never registered."""
    from services.erase_command import erase
    from services.mapper.settings import MapperSettings

    directory = TenantDirectory(settings, codec_from(settings))
    try:
        directory.refresh()
        registered = directory.get(args.tenant)
    finally:
        directory.close()
    if registered is not None and registered.state != "removed":
        raise TenantError(
            f"tenant {args.tenant!r} is {registered.state}: `tether tenants remove` it and let "
            "its topics drain before erasing"
        )
    try:
        report = erase(MapperSettings.load(), args.tenant, execute=args.execute)
    except psycopg.Error as exc:
        # Never echo the DSN: the error class is enough to act on.
        raise TransportError(f"PostgreSQL error ({type(exc).__name__})") from None
    print(json.dumps(report, indent=2), file=out)
    return 0


def print_rows(rows: list[dict[str, Any]], *, as_json: bool, out: Any) -> None:
    if as_json:
        print(json.dumps(rows, indent=2), file=out)
        return
    print(f"{'TENANT':<24} {'STATE':<8} {'PHASE':<13} {'VERSION':>7}  OWNER", file=out)
    for row in rows:
        print(
            f"{row['tenant']:<24} {row['state']:<8} {row['phase'] or '-':<13} "
            f"{row['version']:>7}  {row['owner'] or '-'}",
            file=out,
        )


def list_through_api(url: str, token: str, *, as_json: bool, out: Any = sys.stdout) -> int:
    """``tether tenants list --api URL``: the same listing, read from the console's API."""
    client = ConsoleClient(url, token)
    try:
        rows = client.get("/tenants")["items"]
    except ClientError as exc:
        print(f"tether tenants: the console answered {exc.status}: {exc.body}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(
            f"tether tenants: the console is not reachable ({type(exc).__name__})", file=sys.stderr
        )
        return 2
    finally:
        client.close()
    print_rows(rows, as_json=as_json, out=out)
    return 0


def run(args: argparse.Namespace, settings: TetherSettings, out: Any = sys.stdout) -> int:
    if args.command == "erase":
        return erase_main(args, settings, out)
    by = args.by or getpass.getuser()
    codec = codec_from(settings)
    if args.command in ("list", "show"):
        directory = TenantDirectory(settings, codec)
        try:
            directory.refresh()
            tenants, statuses = directory.tenants(), directory.statuses()
        finally:
            directory.close()
        if args.command == "show":
            found = tenants.get(args.tenant)
            if found is None:
                print(f"tether tenants: no tenant {args.tenant!r}", file=sys.stderr)
                return 1
            print(json.dumps(describe(found, statuses.get(args.tenant)), indent=2), file=out)
            return 0
        rows = [describe(t, statuses.get(t.tenant)) for _, t in sorted(tenants.items())]
        print_rows(rows, as_json=args.json, out=out)
        return 0

    registry = TenantRegistry(settings, codec)
    try:
        if args.command == "add":
            changes = overrides.check(parse_sets(args.set))
            ref = credentials.check_ref(args.credentials)
            secrets_dir = credentials.directory_of(ref, settings.tenant_secrets_dir)
            if secrets_dir is not None and not secrets_dir.is_dir():
                print(
                    f"tether tenants: warning: {ref} does not resolve here ({secrets_dir}); "
                    "the services must see it",
                    file=sys.stderr,
                )
            tenant = registry.add(
                new_tenant(
                    args.tenant,
                    settings=changes,
                    credentials_ref=ref,
                    by=by,
                    dataflow=args.dataflow,
                    paused=args.paused,
                    reason=args.reason,
                )
            )
        elif args.command == "set":
            changes = overrides.check(parse_sets(args.set))
            tenant = registry.update_settings(args.tenant, changes, by=by, reason=args.reason)
        else:
            tenant = registry.set_state(
                args.tenant, COMMAND_STATES[args.command], by=by, reason=args.reason
            )
    finally:
        registry.close()
    print(json.dumps(describe(tenant, None), indent=2), file=out)
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list" and args.api:
        token = ConsoleSettings.load().console_token.get_secret_value()
        if not token:
            print(
                "tether tenants: set TETHER_CONSOLE_TOKEN to read through the API", file=sys.stderr
            )
            return 2
        return list_through_api(args.api, token, as_json=args.json)
    settings = TetherSettings.load()
    try:
        provision_topics(settings)
        return run(args, settings)
    except (TenantError, credentials.CredentialsError) as exc:
        print(f"tether tenants: {exc}", file=sys.stderr)
        return 1
    except TransportError as exc:
        raise ConfigurationError(str(exc)) from None

"""The console's CLI: ``tether review``, ``tether links``, ``tether deadletters`` call the API.

    tether review list [--state open|resolved|all] [--reason R] [--q ID] [--limit N] [--all-pages]
    tether review show REVIEW_ID
    tether review resolve REVIEW_ID (--link CONTACT_ID | --create | --ignore) --reason TEXT [--wait]
    tether links list [--q TEXT] [--status S] [--verification V] [--limit N] [--all-pages]
    tether links show LINK_ID [--timeline] [--limit N]
    tether links unlink|resync|retry LINK_ID ... --reason TEXT [--wait]
    tether deadletters list [--stage mapper|loader|extractor] [--all] [--error-class C]
    tether deadletters redrive --stage mapper|loader [--id DEAD_LETTER_ID]... --reason TEXT
    tether actions show ACTION_ID
    tether actions list [--kind K] [--actor NAME] [--status applied|rejected] [--text]

Every command prints the API's JSON answer (``--text`` for a short table where it helps). The
console's URL and the caller's token come from ``TETHER_CONSOLE_URL`` and ``TETHER_CONSOLE_TOKEN``
(or ``--url``/``--token-file``): the CLI is a client of the same authenticated API as the web
console, with the same roles (DESIGN.md "Operators act through events"). Actions carry one
idempotency key per invocation, so an HTTP retry is the same action; ``--wait`` polls
``/api/v1/actions/{id}`` until the mapper applied or rejected it.

Exit codes: 0 done, 1 refused or failed (401/403/404/4xx, a rejected action), 2 usage error or
the console unreachable.

Imports: standard library, httpx and the console's settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from services.console.settings import ConsoleSettings


class ClientError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class ConsoleClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def _answer(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:200]}
        if response.status_code >= 400:
            raise ClientError(response.status_code, body)
        return body

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v not in (None, "", False)}
        return self._answer(self.http.get(f"/api/v1{path}", params=clean))

    def pages(self, path: str, all_pages: bool, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get(path, cursor=cursor, **params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not all_pages or not cursor:
                return items

    def act(self, body: dict[str, Any], tenant: str | None = None) -> Any:
        body = {"idempotency_key": str(uuid.uuid4()), **body}
        params = {"tenant": tenant} if tenant else {}
        # One idempotency key per invocation: a retry after a lost answer is the same action.
        for attempt in range(3):
            try:
                return self._answer(self.http.post("/api/v1/actions", json=body, params=params))
            except httpx.TransportError:
                if attempt == 2:
                    raise
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def wait(self, action_id: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = self.get(f"/actions/{action_id}")
            if result.get("status") != "pending" or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="console URL (default: TETHER_CONSOLE_URL)")
    common.add_argument("--token-file", type=Path, help="file holding the token")
    common.add_argument("--tenant", default=None)
    parser = argparse.ArgumentParser(prog="tether", parents=[common])
    groups = parser.add_subparsers(dest="group", required=True)

    def act_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--reason", required=True, help="why (kept in the audit trail)")
        p.add_argument("--wait", action="store_true", help="wait until the mapper applied it")

    review = groups.add_parser("review", parents=[common]).add_subparsers(dest="cmd", required=True)
    r_list = review.add_parser("list", parents=[common])
    r_list.add_argument("--state", default="open", choices=["open", "resolved", "all"])
    r_list.add_argument("--reason", dest="reason_filter")
    r_list.add_argument("--q")
    r_list.add_argument("--limit", type=int)
    r_list.add_argument("--all-pages", action="store_true")
    r_list.add_argument("--text", action="store_true")
    r_show = review.add_parser("show", parents=[common])
    r_show.add_argument("review_id")
    r_res = review.add_parser("resolve", parents=[common])
    r_res.add_argument("review_id")
    how = r_res.add_mutually_exclusive_group(required=True)
    how.add_argument("--link", metavar="CONTACT_ID", help="link to this candidate contact")
    how.add_argument("--create", action="store_true", help="create a new contact anyway")
    how.add_argument("--ignore", action="store_true", help="ignore the record (reversible)")
    how.add_argument("--release-deletes", action="store_true", help="reset the delete breaker")
    act_options(r_res)

    links = groups.add_parser("links", parents=[common]).add_subparsers(dest="cmd", required=True)
    l_list = links.add_parser("list", parents=[common])
    l_list.add_argument("--q", help="name, e-mail, phone, record id or link id")
    l_list.add_argument("--status")
    l_list.add_argument("--verification")
    l_list.add_argument("--limit", type=int)
    l_list.add_argument("--all-pages", action="store_true")
    l_list.add_argument("--text", action="store_true")
    l_show = links.add_parser("show", parents=[common])
    l_show.add_argument("link_id")
    l_show.add_argument("--timeline", action="store_true", help="the timeline instead")
    l_show.add_argument("--limit", type=int)
    l_unlink = links.add_parser("unlink", parents=[common])
    l_unlink.add_argument("link_id")
    act_options(l_unlink)
    l_resync = links.add_parser("resync", parents=[common])
    l_resync.add_argument("link_id")
    l_resync.add_argument("--side", required=True, choices=["wix", "poweroffice"])
    act_options(l_resync)
    l_retry = links.add_parser("retry", parents=[common])
    l_retry.add_argument("link_id")
    l_retry.add_argument("--command-id", required=True)
    act_options(l_retry)

    dead = groups.add_parser("deadletters", parents=[common]).add_subparsers(
        dest="cmd", required=True
    )
    d_list = dead.add_parser("list", parents=[common])
    d_list.add_argument("--stage", default="mapper", choices=["extractor", "mapper", "loader"])
    d_list.add_argument("--all", action="store_true", help="include re-driven ones")
    d_list.add_argument("--error-class")
    d_list.add_argument("--q")
    d_list.add_argument("--limit", type=int)
    d_list.add_argument("--all-pages", action="store_true")
    d_redrive = dead.add_parser("redrive", parents=[common])
    d_redrive.add_argument("--stage", required=True, choices=["mapper", "loader"])
    d_redrive.add_argument("--id", action="append", default=[], dest="ids")
    act_options(d_redrive)

    actions = groups.add_parser("actions", parents=[common]).add_subparsers(
        dest="cmd", required=True
    )
    a_show = actions.add_parser("show", parents=[common])
    a_show.add_argument("action_id")
    a_list = actions.add_parser("list", parents=[common])
    a_list.add_argument("--kind")
    a_list.add_argument("--actor")
    a_list.add_argument("--status", choices=["applied", "rejected"])
    a_list.add_argument("--limit", type=int)
    a_list.add_argument("--all-pages", action="store_true")
    a_list.add_argument("--text", action="store_true")
    return parser


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c) or "")) for r in rows)]) for c in columns}
    sys.stdout.write("  ".join(c.ljust(widths[c]) for c in columns).rstrip() + "\n")
    for row in rows:
        line = "  ".join(str(row.get(c) or "").ljust(widths[c]) for c in columns)
        sys.stdout.write(line.rstrip() + "\n")


def _action_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.group == "review":
        body: dict[str, Any] = {"review_id": args.review_id}
        if args.link:
            body |= {"kind": "LINK_TO_CANDIDATE", "contact_id": args.link}
        elif args.create:
            body["kind"] = "CREATE_NEW_CONTACT"
        elif args.ignore:
            body["kind"] = "IGNORE_RECORD"
        else:
            body["kind"] = "RESET_DELETE_BREAKER"
        return body
    if args.group == "links":
        body = {"link_id": args.link_id}
        if args.cmd == "unlink":
            body["kind"] = "UNLINK"
        elif args.cmd == "resync":
            body |= {"kind": "RESYNC", "side": args.side}
        else:
            body |= {"kind": "RETRY_COMMAND", "command_id": args.command_id}
        return body
    return {
        "kind": "REDRIVE_DEAD_LETTERS",
        "deadletter_stage": args.stage,
        "deadletter_ids": list(args.ids),
    }


def run(client: ConsoleClient, args: argparse.Namespace) -> int:
    tenant = args.tenant
    if args.group == "actions" and args.cmd == "show":
        _print(client.get(f"/actions/{args.action_id}", tenant=tenant))
        return 0
    if args.cmd == "list":
        if args.group == "review":
            rows = client.pages(
                "/review-items",
                args.all_pages,
                state=args.state,
                reason=args.reason_filter,
                q=args.q,
                limit=args.limit,
                tenant=tenant,
            )
            cols: tuple[str, ...] = (
                "review_id",
                "reason",
                "system",
                "resource",
                "record_id",
                "last_seen",
            )
        elif args.group == "links":
            rows = client.pages(
                "/links",
                args.all_pages,
                q=args.q,
                status=args.status,
                verification=args.verification,
                limit=args.limit,
                tenant=tenant,
            )
            cols = ("link_id", "status", "wix_contact_id", "name", "updated_at")
        elif args.group == "actions":
            rows = client.pages(
                "/actions",
                args.all_pages,
                kind=args.kind,
                actor=args.actor,
                status=args.status,
                limit=args.limit,
                tenant=tenant,
            )
            cols = ("applied_at", "kind", "actor", "status", "action_id")
        else:
            rows = client.pages(
                "/dead-letters",
                args.all_pages,
                stage=args.stage,
                all="1" if args.all else None,
                error_class=args.error_class,
                q=args.q,
                limit=args.limit,
                tenant=tenant,
            )
            cols = ("dead_letter_id", "error_class", "record", "first_seen")
        if getattr(args, "text", False):
            _table(rows, cols)
        else:
            _print(rows)
        return 0
    if args.cmd == "show":
        if args.group == "review":
            _print(client.get(f"/review-items/{args.review_id}", tenant=tenant))
        elif args.timeline:
            _print(client.get(f"/links/{args.link_id}/timeline", tenant=tenant, limit=args.limit))
        else:
            _print(client.get(f"/links/{args.link_id}", tenant=tenant))
        return 0
    body = _action_body(args) | {"reason": args.reason}
    submitted = client.act(body, tenant)
    if not args.wait:
        _print(submitted)
        return 0
    result = client.wait(submitted["action_id"])
    _print({**submitted, "result": result})
    return 1 if result.get("status") == "rejected" else 0


def main_for(group: str, argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args([group, *argv])
    settings: ConsoleSettings = ConsoleSettings.load()
    token = settings.console_token.get_secret_value()
    if args.token_file is not None:
        token = args.token_file.read_text(encoding="utf-8").strip()
    if not token:
        sys.stderr.write(f"tether {group}: set TETHER_CONSOLE_TOKEN (or --token-file)\n")
        return 2
    client = ConsoleClient(args.url or settings.console_url, token)
    try:
        return run(client, args)
    except ClientError as exc:
        sys.stderr.write(f"tether {group}: the console answered {exc.status}: ")
        sys.stderr.write(json.dumps(exc.body, ensure_ascii=False) + "\n")
        return 1
    except httpx.HTTPError as exc:
        sys.stderr.write(f"tether {group}: the console is not reachable ({type(exc).__name__})\n")
        return 2
    finally:
        client.close()


def review_main(argv: list[str]) -> int:
    return main_for("review", argv)


def links_main(argv: list[str]) -> int:
    return main_for("links", argv)


def deadletters_main(argv: list[str]) -> int:
    return main_for("deadletters", argv)


def actions_main(argv: list[str]) -> int:
    return main_for("actions", argv)

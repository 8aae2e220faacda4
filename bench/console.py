"""Console benchmark (not a test): p50/p99 latency of the operator console's API with 100k links.

    .venv/bin/python bench/console.py [--links 100000] [--requests 200] [--timeout 900]

Needs the local PostgreSQL and Kafka (``python3 scripts/infra.py up``; TETHER_POSTGRES_DSN and
TETHER_KAFKA_BOOTSTRAP_SERVERS as printed by infra.py). Kafka only answers the console's
readiness check and its dead-letter/lag figures (a topic prefix of its own: nothing exists there).

How:

1. a throw-away database gets the mapper's schema (``apply_migrations``: every migration,
   the console's search index included when it exists);
2. ``--links`` links are bulk-loaded with ``COPY``: each an active link of a PowerOffice employee
   and a Wix contact (link state documents built by the mapper's own ``Link`` model, match keys by
   its ``props_match_keys``), their member and key index rows, the contacts and their keys, the
   employees' last records, five history rows per link (the change from each side, the decision,
   the command's outcome, with field-level before/after values), one command per link in the
   outbox, and review items (ambiguous matches and rejected writes, 1 % of the links) plus
   conflicts on another 1 %;
3. ``tether console`` runs as its own process (uvicorn, as deployed) on that database, with a
   fresh operator token and, by default, the overview's count cache off
   (``--overview-cache-seconds 0``): each overview request pays for every count;
4. each measured request is real HTTP (httpx, keep-alive, one client, sequential — latency, not
   throughput): the overview, the links list searched by e-mail (an exact match-key lookup) and by
   name (a substring of "first last"), and one link's timeline; each endpoint is warmed up, then
   timed ``--requests`` times with varying targets (fewer when they take more than
   ``--endpoint-seconds``, never under 10), and its p50/p99 printed with the count. Every answer
   must be 200 and hold the expected row (a search that finds nothing is an error, not a fast
   answer).

It never hangs: every HTTP request has a timeout, the whole run ``--timeout``; any failure exits
with status 1 and says what failed. The database is dropped and the console stopped at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from services.mapper.domain.identity import RecordRef
from services.mapper.domain.mappings import props_match_keys
from services.mapper.domain.state import Link, Member, Snapshot, Written
from services.mapper.migrations import apply_migrations

WIX = "wix"  # the shipped dataflow's hub system

TENANT = "default"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
FIRST = _words(
    "Ola Kari Ingrid Per Nora Lars Emma Jonas Sofie Henrik Maja Anders Ida Magnus Sara "
    "Kristian Thea Martin Julie Eirik Hanna Sander Live Tobias Marte Even Tuva Sindre "
    "Ingeborg Mathias Astrid Vegard Silje Haakon Ragnhild Torbjorn Solveig Sigurd Hedda "
    "Aksel"
)
LAST = _words(
    "Nordmann Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen "
    "Karlsen Johnsen Pettersen Eriksen Berg Haugen Hagen Johannessen Andreassen Jacobsen "
    "Dahl Jorgensen Halvorsen Henriksen Lund Sorensen Jakobsen Moen Gundersen Iversen "
    "Strand Solberg Svendsen Eide Knutsen Martinsen Paulsen Bakken Kristoffersen "
    "Mathisen Lie Amundsen Nguyen Rasmussen Ali Lunde Solheim Berntsen Moe Kristensen "
    "Bakke Holm Lien Fredriksen Ahmed Hauge Lorentzen"
)
# Placeholders in the template link document, replaced per link (never valid values themselves).
P = {k: f"@@{k}@@" for k in ("LINK", "PO", "WIX", "FIRST", "LAST", "EMAIL", "PHONE", "TS")}


class BenchError(Exception):
    """The benchmark could not measure what it promised (exit status 1)."""


def say(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def person(i: int) -> dict[str, str]:
    first = FIRST[i % len(FIRST)]
    last = LAST[(i // len(FIRST)) % len(LAST)]
    suffix = i // (len(FIRST) * len(LAST))  # names repeat every 2,360 links, like real ones
    if suffix:
        last = f"{last}-{'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[suffix % 26]}{suffix}"
    return {
        "first": first,
        "last": last,
        "email": f"{first}.{last}.{i}@example.no".lower(),
        "phone": f"+479{i:07d}",
    }


def template_state() -> str:
    """One link document as the mapper writes it, with placeholders for the per-link values."""
    props = {
        "first_name": P["FIRST"],
        "last_name": P["LAST"],
        "email": P["EMAIL"],
        "phone": P["PHONE"],
    }
    employee_props = {"first_name": P["FIRST"], "last_name": P["LAST"], "phone": P["PHONE"]}
    at = T0
    po = Member(
        ref=RecordRef(tenant=TENANT, system="poweroffice", resource="employees", id=P["PO"]),
        flow="employees",
        observed=Snapshot(props=employee_props, source_ts=at, event_id="e-po-" + P["LINK"]),
        written=Written(command_id="c-po-" + P["LINK"], props=employee_props, at=at),
        synced=tuple(employee_props),
        joined_at=at,
    )
    wix = Member(
        ref=RecordRef(tenant=TENANT, system="wix", resource="contacts", id=P["WIX"]),
        flow=WIX,
        observed=Snapshot(props=props, source_ts=at, revision=3, event_id="e-wix-" + P["LINK"]),
        written=Written(command_id="c-wix-" + P["LINK"], props=props, at=at),
        synced=tuple(props),
        created_by_engine=False,
        joined_at=at,
    )
    link = Link(
        link_id=P["LINK"],
        tenant=TENANT,
        members=(po, wix),
        base=props,
        base_ts=dict.fromkeys(props, at),
        version=4,
        created_at=at,
        updated_at=at,
    )
    text = link.model_dump_json()
    return text.replace(at.isoformat().replace("+00:00", "Z"), P["TS"])


def fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(P[key], value)
    return template


def copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...], rows: Iterator[tuple]
) -> int:
    count = 0
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def load(dsn: str, n: int, seed: int) -> dict[str, Any]:
    """Bulk-load ``n`` links and everything around them; returns search targets."""
    rng = random.Random(seed)
    template = template_state()
    people = [person(i) for i in range(n)]
    link_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    contact_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    po_ids = [str(100_000 + i) for i in range(n)]
    times = [T0 + timedelta(seconds=37 * i) for i in range(n)]
    keys = [props_match_keys({"email": p["email"], "phone": p["phone"]}) for p in people]
    started = time.monotonic()
    with psycopg.connect(dsn) as conn:
        counts: dict[str, int] = {}

        def links() -> Iterator[tuple]:
            for i, p in enumerate(people):
                ts = times[i].isoformat().replace("+00:00", "Z")
                state = fill(
                    template,
                    {
                        "LINK": link_ids[i],
                        "PO": po_ids[i],
                        "WIX": contact_ids[i],
                        "FIRST": p["first"],
                        "LAST": p["last"],
                        "EMAIL": p["email"],
                        "PHONE": p["phone"],
                        "TS": ts,
                    },
                )
                status = "error" if i % 997 == 0 else "active"
                yield (link_ids[i], TENANT, status, contact_ids[i], 4, state, times[i], times[i])

        counts["links"] = copy_rows(
            conn,
            "mapper_links",
            (
                "link_id",
                "tenant",
                "status",
                "hub_record_id",
                "version",
                "state",
                "created_at",
                "updated_at",
            ),
            links(),
        )

        def members() -> Iterator[tuple]:
            for i in range(n):
                yield (TENANT, "poweroffice", "employees", po_ids[i], link_ids[i])
                yield (TENANT, "wix", "contacts", contact_ids[i], link_ids[i])

        counts["members"] = copy_rows(
            conn,
            "mapper_link_members",
            ("tenant", "system", "resource", "record_id", "link_id"),
            members(),
        )
        counts["link_keys"] = copy_rows(
            conn,
            "mapper_link_keys",
            ("tenant", "kind", "value", "link_id"),
            ((TENANT, k.kind, k.value, link_ids[i]) for i in range(n) for k in keys[i]),
        )

        def contacts() -> Iterator[tuple]:
            for i, p in enumerate(people):
                props = {
                    "first_name": p["first"],
                    "last_name": p["last"],
                    "email": p["email"],
                    "phone": p["phone"],
                }
                record = {
                    "id": contact_ids[i],
                    "revision": 3,
                    "info": {
                        "name": {"first": p["first"], "last": p["last"]},
                        "emails": {"items": [{"email": p["email"], "primary": True}]},
                        "phones": {"items": [{"phone": p["phone"], "primary": True}]},
                    },
                }
                yield (
                    TENANT,
                    contact_ids[i],
                    json.dumps(props),
                    3,
                    times[i],
                    json.dumps(record),
                    times[i],
                )

        counts["contacts"] = copy_rows(
            conn,
            "mapper_contacts",
            ("tenant", "contact_id", "props", "revision", "source_ts", "record", "updated_at"),
            contacts(),
        )
        counts["contact_keys"] = copy_rows(
            conn,
            "mapper_contact_keys",
            ("tenant", "kind", "value", "contact_id"),
            ((TENANT, k.kind, k.value, contact_ids[i]) for i in range(n) for k in keys[i]),
        )

        def records() -> Iterator[tuple]:
            for i, p in enumerate(people):
                record = {
                    "Id": int(po_ids[i]),
                    "FirstName": p["first"],
                    "LastName": p["last"],
                    "EmailAddress": p["email"],
                    "PhoneNumber": p["phone"],
                }
                yield (TENANT, "poweroffice", "employees", po_ids[i], json.dumps(record), times[i])

        counts["records"] = copy_rows(
            conn,
            "mapper_records",
            ("tenant", "system", "resource", "record_id", "record", "updated_at"),
            records(),
        )

        has_fields = _has_column(conn, "mapper_history", "fields")

        def history() -> Iterator[tuple]:
            for i, p in enumerate(people):
                at = times[i]
                po = ("poweroffice", "employees", po_ids[i])
                wix = ("wix", "contacts", contact_ids[i])
                rows = [
                    (wix, "change", "indexed", None, 0, None, {}),
                    (po, "change", "linked", "matched on email", 1, None, {}),
                    (wix, "outcome", "completed", None, 0, None, {}),
                    (
                        po,
                        "change",
                        "mapped",
                        None,
                        1,
                        None,
                        {"last_name": {"before": "Old" + p["last"], "after": p["last"]}},
                    ),
                    (wix, "outcome", "completed", None, 0, None, {}),
                ]
                for n_row, (ref, source, decision, reason, cmds, err, fields) in enumerate(rows):
                    row = (
                        TENANT,
                        link_ids[i],
                        *ref,
                        source,
                        f"e-{i}-{n_row}",
                        f"c-{i}-{n_row}" if source == "outcome" else None,
                        decision,
                        reason,
                        cmds,
                        err,
                        at + timedelta(seconds=n_row),
                    )
                    yield (*row, json.dumps(fields) if fields else None) if has_fields else row

        history_columns = (
            "tenant",
            "link_id",
            "system",
            "resource",
            "record_id",
            "source",
            "event_id",
            "command_id",
            "decision",
            "reason",
            "commands",
            "error_code",
            "at",
        )
        counts["history"] = copy_rows(
            conn,
            "mapper_history",
            (*history_columns, "fields") if has_fields else history_columns,
            history(),
        )

        def outbox() -> Iterator[tuple]:
            for i in range(n):
                yield (
                    f"c-{i}-2",
                    TENANT,
                    link_ids[i],
                    "wix",
                    "contacts",
                    contact_ids[i],
                    "update",
                    f"e-{i}-1",
                    "bench.commands.wix.contacts",
                    link_ids[i].encode(),
                    b"\x00bench",  # an encoded Command: the console shows metadata only
                    times[i],
                    times[i] + timedelta(seconds=1),
                )

        counts["outbox"] = copy_rows(
            conn,
            "mapper_outbox",
            (
                "command_id",
                "tenant",
                "link_id",
                "target_system",
                "target_resource",
                "target_id",
                "action",
                "caused_by",
                "topic",
                "key",
                "payload",
                "created_at",
                "produced_at",
            ),
            outbox(),
        )

        def reviews() -> Iterator[tuple]:
            for i in range(0, n, 100):  # 1 %: every hundredth link's employee
                ambiguous = i % 200 == 0
                reason = "ambiguous_match" if ambiguous else "write_rejected"
                candidates = (
                    [{"contact_id": contact_ids[(i + 1) % n]}, {"contact_id": contact_ids[i]}]
                    if ambiguous
                    else []
                )
                yield (
                    f"rv-{i}",
                    TENANT,
                    reason,
                    "two contacts share the phone" if ambiguous else "400 invalid phone",
                    "poweroffice",
                    "employees",
                    po_ids[i],
                    None if ambiguous else link_ids[i],
                    None if ambiguous else "phone",
                    json.dumps(candidates),
                    times[i],
                    times[i],
                )

        counts["review_items"] = copy_rows(
            conn,
            "mapper_review_items",
            (
                "review_id",
                "tenant",
                "reason",
                "detail",
                "system",
                "resource",
                "record_id",
                "link_id",
                "property",
                "candidates",
                "first_seen",
                "last_seen",
            ),
            reviews(),
        )
        counts["conflicts"] = copy_rows(
            conn,
            "mapper_conflicts",
            (
                "conflict_id",
                "tenant",
                "link_id",
                "property",
                "kind",
                "rule",
                "winner",
                "losers",
                "cause",
                "at",
            ),
            (
                (
                    f"cf-{i}",
                    TENANT,
                    link_ids[i],
                    "last_name",
                    "concurrent_edit",
                    "newest_wins",
                    json.dumps({"system": "wix", "value": people[i]["last"]}),
                    json.dumps([{"system": "poweroffice", "value": "Other"}]),
                    "both sides edited",
                    times[i] + timedelta(seconds=3),
                )
                for i in range(50, n, 100)
            ),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    say(
        f"loaded in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    return {"people": people, "link_ids": link_ids}


def _has_column(conn: psycopg.Connection[Any], table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()
    return row is not None


# ------------------------------------------------------------------------------------------------
# The console process and the measurements
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_console(
    dsn: str, bootstrap: str, run_dir: Path, overview_cache_seconds: float
) -> tuple[subprocess.Popen[bytes], str, str]:
    token = secrets.token_urlsafe(24)
    tokens_file = run_dir / "console-tokens"
    tokens_file.touch(mode=0o600)
    tokens_file.write_text(f"bench:operator:sha256:{hashlib.sha256(token.encode()).hexdigest()}\n")
    ops, public = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(
        {
            "TETHER_POSTGRES_DSN": dsn,
            "TETHER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TETHER_TOPIC_PREFIX": f"benchconsole{uuid.uuid4().hex[:8]}",
            "TETHER_HTTP_HOST": "127.0.0.1",
            "TETHER_HTTP_PORT": str(ops),
            "TETHER_PUBLIC_PORT": str(public),
            "TETHER_SECRETS_DIR": str(run_dir / "no-secrets"),
            "TETHER_CONSOLE_TOKENS_FILE": str(tokens_file),
            "TETHER_CONSOLE_RATE_PER_MINUTE": "1000000",  # measuring latency, not the limiter
            "TETHER_CONSOLE_OVERVIEW_CACHE_SECONDS": str(overview_cache_seconds),
        }
    )
    log = (run_dir / "console.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "console"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise BenchError(
                f"the console exited ({process.returncode}); see {run_dir}/console.log"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{ops}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"the console was not ready in 90 s; see {run_dir}/console.log")
        time.sleep(0.2)
    return process, f"http://127.0.0.1:{public}", token


def measure(
    client: httpx.Client,
    name: str,
    paths: list[str],
    check: Callable[[str, dict[str, Any]], None],
    requests: int,
    budget: float,
) -> dict[str, float]:
    """``requests`` timed requests, or as many as fit in ``budget`` seconds (at least 10)."""
    for path in paths[:3]:  # warm-up: connections, caches, plans
        _get(client, path)
    seconds: list[float] = []
    stop_at = time.monotonic() + budget
    for n in range(requests):
        if n >= 10 and time.monotonic() > stop_at:
            break
        path = paths[n % len(paths)]
        started = time.perf_counter()
        body = _get(client, path)
        seconds.append(time.perf_counter() - started)
        check(path, body)
    seconds.sort()
    result = {
        "p50_ms": statistics.median(seconds) * 1000,
        "p99_ms": seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] * 1000,
        "max_ms": seconds[-1] * 1000,
    }
    say(
        f"  {name:<34} p50 {result['p50_ms']:8.1f} ms   p99 {result['p99_ms']:8.1f} ms   "
        f"max {result['max_ms']:8.1f} ms   ({len(seconds)} requests)"
    )
    return result


def _get(client: httpx.Client, path: str) -> dict[str, Any]:
    answer = client.get(path)
    if answer.status_code != 200:
        raise BenchError(
            f"GET {path.split('?')[0]} answered {answer.status_code}: {answer.text[:200]}"
        )
    return dict(answer.json())


def run(args: argparse.Namespace) -> int:
    dsn = os.environ.get("TETHER_POSTGRES_DSN")
    bootstrap = os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS")
    if not dsn or not bootstrap:
        raise BenchError(
            "TETHER_POSTGRES_DSN and TETHER_KAFKA_BOOTSTRAP_SERVERS are needed "
            "(python3 scripts/infra.py up)"
        )
    name = f"benchconsole_{uuid.uuid4().hex[:8]}"
    base, _, _ = dsn.rpartition("/")
    db_dsn = f"{base}/{name}"
    run_dir = Path(tempfile.mkdtemp(prefix="tether-bench-console-"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    process: subprocess.Popen[bytes] | None = None
    try:
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            apply_migrations(conn)
        say(f"bench/console.py: {args.links:,} links into a throw-away database ({name})")
        data = load(db_dsn, args.links, args.seed)
        process, url, token = start_console(db_dsn, bootstrap, run_dir, args.overview_cache_seconds)
        rng = random.Random(args.seed + 1)
        picks = [rng.randrange(args.links) for _ in range(max(50, args.requests // 4))]
        people, link_ids = data["people"], data["link_ids"]
        headers = {"authorization": f"Bearer {token}"}
        say(
            f"console at {url} (uvicorn, its own process; overview counts cached "
            f"{args.overview_cache_seconds:g} s); sequential keep-alive requests:"
        )
        figures: dict[str, dict[str, float]] = {}
        with httpx.Client(base_url=url, headers=headers, timeout=args.request_timeout) as client:

            def overview_ok(_path: str, body: dict[str, Any]) -> None:
                text = json.dumps(body)
                if str(args.links) not in text and f"{args.links:,}" not in text:
                    raise BenchError(
                        f"the overview does not count {args.links} links: {text[:300]}"
                    )

            figures["overview"] = measure(
                client,
                "GET /api/v1/overview",
                ["/api/v1/overview"],
                overview_ok,
                args.requests,
                args.endpoint_seconds,
            )

            def found(wanted: dict[str, str]) -> Callable[[str, dict[str, Any]], None]:
                def check(path: str, body: dict[str, Any]) -> None:
                    ids = {item.get("link_id") for item in body.get("items", [])}
                    if wanted[path] not in ids:
                        raise BenchError(f"{path.split('?')[0]} search did not find its link")

                return check

            by_email = {
                f"/api/v1/links?{httpx.QueryParams({'q': people[i]['email']})}": link_ids[i]
                for i in picks
            }
            figures["links?q=<e-mail>"] = measure(
                client,
                "GET /api/v1/links?q=<e-mail>",
                list(by_email),
                found(by_email),
                args.requests,
                args.endpoint_seconds,
            )
            by_name = {
                "/api/v1/links?"
                + str(
                    httpx.QueryParams({"q": f"{people[i]['first']} {people[i]['last']}"})
                ): link_ids[i]
                for i in picks
                if people[i]["last"].count("-") == 1  # a unique full name
            }
            if not by_name:
                raise BenchError("no unique names to search for: use --links 3000 or more")
            figures["links?q=<name>"] = measure(
                client,
                "GET /api/v1/links?q=<first last>",
                list(by_name),
                found(by_name),
                args.requests,
                args.endpoint_seconds,
            )
            timelines = [f"/api/v1/links/{link_ids[i]}/timeline" for i in picks]

            def timeline_ok(path: str, body: dict[str, Any]) -> None:
                items = body.get("items") or body.get("entries") or []
                if len(items) < 5:
                    raise BenchError(f"a timeline has {len(items)} entries, expected 5 or more")

            figures["timeline"] = measure(
                client,
                "GET /api/v1/links/{id}/timeline",
                timelines,
                timeline_ok,
                args.requests,
                args.endpoint_seconds,
            )
        if args.json:
            Path(args.json).write_text(json.dumps({"links": args.links, **figures}, indent=2))
        return 0
    except httpx.HTTPError as error:
        state = "not started"
        if process is not None:
            code = process.poll()
            state = "still running" if code is None else f"exited with status {code}"
        raise BenchError(
            f"{type(error).__name__}: {error} (the console {state}; its log: {run_dir}/console.log)"
        ) from None
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=900.0, help="the whole run, seconds")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument(
        "--overview-cache-seconds",
        type=float,
        default=0.0,
        help="the console's TETHER_CONSOLE_OVERVIEW_CACHE_SECONDS (deployed default 5): 0 makes "
        "every overview request count everything, the cost a viewer pays after expiry",
    )
    parser.add_argument(
        "--endpoint-seconds",
        type=float,
        default=90.0,
        help="stop timing an endpoint after this long (after 10 requests at least)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    def expired(*_: object) -> None:
        raise BenchError(f"TIMEOUT: the run took more than {args.timeout:.0f}s")

    def terminated(*_: object) -> None:
        raise BenchError("terminated (SIGTERM)")

    signal.signal(signal.SIGALRM, expired)
    signal.signal(signal.SIGTERM, terminated)  # clean up: the console and the database
    signal.alarm(int(args.timeout))
    try:
        code = run(args)
    except BenchError as failure:
        print(f"bench/console.py: FAILED: {failure}", file=sys.stderr, flush=True)
        code = 1
    except (httpx.HTTPError, psycopg.Error) as error:
        print(f"bench/console.py: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        code = 1
    finally:
        signal.alarm(0)
    sys.exit(code)


if __name__ == "__main__":
    main()

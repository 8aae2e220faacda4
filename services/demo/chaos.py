"""``tether chaos``: the whole pipeline under faults, and proof that it still converges exactly.

One run (``make chaos``; ``tether demo --faults`` and ``tests/e2e/test_chaos_small.py`` run
smaller profiles of it, ``services.demo.faults``):

1. set-up: a fresh database, both simulators (with the realism options the profile turns on),
   the seed (``seed.generate``: its ``expectations`` are the exact answer), topics, services;
2. **initial sync under faults**: API faults on both simulators (500/503, dropped connections,
   lost responses after the write happened, timeouts, 429 storms), a killer thread doing kill -9
   of random services that a **restarter** brings back, poison bytes on every consumed topic,
   forged and oversize webhooks, a Kafka kill -9 for ``kafka_outage_seconds`` mid-sync and a
   PostgreSQL kill -9 (both only on the run's own infrastructure: ``InfraControl``);
3. **edits under faults**: edits on both sides (some with NUL/control/emoji/RTL names), each on
   its own link so its final value is known, with a second Kafka outage in the middle;
4. the faults end (rules cleared, the last killed service back): the clock for "time to converge
   after the last fault" starts;
5. **convergence**: every record linked or in review, nothing pending, every consumer group
   committed up to the end, every edit arrived — stable for a few seconds;
6. **measure**: the seed's exact counts read from both systems, duplicates, edits, stranded
   partitions, poison → dead letters, webhooks refused, a verification cycle, services that exited
   without being killed; ``faults.verdict`` lists the failed assertions and the JSON report says
   everything.

Everything is bounded by ``--timeout``: a phase that does not finish in time fails the run with a
message saying which, and the report is still written with what was measured.

Imports: the demo's own modules, the core codec/topics, the connectors' admin clients and the
Wix webhook signer (to forge webhooks); never a service's internals.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from kafka.errors import KafkaError

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.seed import generate
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simstore import ContactChange
from services.connectors.wix.simulator import DEFAULT_INSTANCE_ID
from services.connectors.wix.simwebhooks import WebhookSigner, envelope
from services.core.codec import AvroCodec
from services.core.topics import TopicLayout
from services.demo import faults, kafkaview, mapperdb
from services.demo.faults import SERVICES, Expectation, Profile
from services.demo.main import PO_RESOURCE, collect_records
from services.demo.seeding import Seeded, seed_simulators
from services.demo.stack import Stack
from services.demo.verify import LinkView, reconcile
from services.mapper.domain import read_hub, read_member
from services.mapper.domain.mappings import kind_of
from services.mapper.domain.normalize import same

ROOT = Path(__file__).resolve().parents[2]
SHARED_INFRA_DIR = "/tmp/tether-infra"
OVERSIZE_BYTES = 3 * 1024 * 1024
QUIET_SECONDS = 5.0
IDLE_PATIENCE = 120.0  # idle but incomplete this long after the faults: something is lost


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the run's own infrastructure ----------------------------------------------------------------


class InfraControl:
    """kill -9 and restart of the run's own Kafka and PostgreSQL (``scripts/infra.py``).

    Only for an infrastructure in its own ``TETHER_INFRA_DIR``: the shared default one (other
    people's tests run on it) is refused.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    @classmethod
    def from_environment(cls) -> InfraControl | None:
        infra_dir = os.environ.get("TETHER_INFRA_DIR", "")
        if not infra_dir or os.path.realpath(infra_dir) == os.path.realpath(SHARED_INFRA_DIR):
            return None
        return cls(dict(os.environ))

    def run(self, command: str) -> None:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "infra.py"), command],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"infra.py {command} failed: {result.stderr.strip()[-500:]}")


# -- restarter and killer ------------------------------------------------------------------------


class Restarter(threading.Thread):
    """Brings killed services back after their delay; any other exit is recorded as unexpected
    (with its exit code and the last lines of its log) and restarted too, so the run goes on."""

    def __init__(self, stack: Stack, started: float) -> None:
        super().__init__(name="chaos-restarter", daemon=True)
        self.stack = stack
        self.started = started
        self.lock = threading.Lock()
        self.kills: collections.Counter[str] = collections.Counter()
        self.restarts: collections.Counter[str] = collections.Counter()
        self.unexpected: list[dict[str, Any]] = []
        self._due: dict[str, float] = {}
        self._halt = threading.Event()

    def kill(self, name: str, restart_delay: float) -> bool:
        """kill -9 ``name`` now; False when it is down already (waiting for its restart)."""
        with self.lock:
            process = self.stack.processes[name]
            if not process.running or name in self._due:
                return False
            process.kill()
            self.kills[name] += 1
            self._due[name] = time.monotonic() + restart_delay
            return True

    def idle(self) -> bool:
        """No killed service is waiting for its restart."""
        with self.lock:
            return not self._due

    def run(self) -> None:
        while not self._halt.wait(0.25):
            with self.lock:
                now = time.monotonic()
                for name in SERVICES:
                    process = self.stack.processes.get(name)
                    if process is None:
                        continue
                    if name in self._due:
                        if now >= self._due[name]:
                            del self._due[name]
                            self.stack.start_service(name)
                            self.restarts[name] += 1
                    elif not process.running:
                        self.unexpected.append(
                            {
                                "service": name,
                                "exit_code": process.popen.returncode if process.popen else None,
                                "at_seconds": round(now - self.started, 1),
                                "log_tail": _tail(process.log_path),
                            }
                        )
                        say(f"{name} exited on its own (code {self.unexpected[-1]['exit_code']})")
                        process.close_log()
                        self.stack.start_service(name)
                        self.restarts[name] += 1

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)


def _tail(path: Path, lines: int = 3) -> list[str]:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:300] for line in text[-lines:]]


class Killer(threading.Thread):
    """Executes the profile's kill plan (kill -9 of a service, then the restarter's delay)."""

    def __init__(self, restarter: Restarter, plan: list[faults.Kill]) -> None:
        super().__init__(name="chaos-killer", daemon=True)
        self.restarter = restarter
        self.plan = plan
        self._halt = threading.Event()
        self.edits_started = threading.Event()
        self.done = 0

    def run(self) -> None:
        for kill in self.plan:
            if kill.phase == "edits":
                while not self.edits_started.wait(0.5):
                    if self._halt.is_set():
                        return
            if self._halt.wait(kill.after_seconds):
                return
            # A service still down from the previous kill is killed once it is back.
            while not self.restarter.kill(kill.service, kill.restart_delay):
                if self._halt.wait(1.0):
                    return
            self.done += 1

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)


# -- edits ---------------------------------------------------------------------------------------


@dataclass
class Edit:
    index: int
    side: str  # the system edited: "poweroffice" or "wix"
    link_id: str
    prop: str
    value: str
    source: tuple[str, str]  # ("wix", contact id) or (resource, record id)
    targets: list[tuple[str, str]]
    odd: bool


@dataclass
class Edits:
    made: list[Edit] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def _value(po: PowerOfficeSimulatorAdmin, wix: WixAdmin, where: tuple[str, str], prop: str) -> Any:
    """The mapped value of ``prop`` at ``where``; ``Ellipsis`` when that record does not map it."""
    system_or_resource, record_id = where
    if system_or_resource == "wix":
        return read_hub(wix.contact(record_id)).get(prop)
    record = po.record(PO_RESOURCE[system_or_resource], int(record_id))["record"]
    return read_member(system_or_resource, record).get(prop, Ellipsis)


def make_edits(
    stack: Stack,
    links: list[LinkView],
    count: int,
    odd: list[str],
    rng: random.Random,
    start: int,
    into: Edits,
) -> None:
    """``count`` edits alternating sides, each on a link no other edit touches."""
    po = PowerOfficeSimulatorAdmin(stack.poweroffice_url)
    wix = WixAdmin(stack.wix_url)
    used = {edit.link_id for edit in into.made}
    try:
        candidates = [link for link in links if link.link_id not in used]
        rng.shuffle(candidates)
        for i in range(start, start + count):
            side = "poweroffice" if i % 2 == 0 else "wix"
            prop = "last_name" if side == "poweroffice" else "first_name"
            # Odd names go on every third edit (both sides) until the list is used up.
            is_odd = bool(odd) and i % 3 == 0
            value = odd.pop(0) if is_odd else f"Chaos{i:03d}"
            while candidates:
                link = candidates.pop()
                persons = [m for m in link.members if _value(po, wix, m, prop) is not Ellipsis]
                if persons:
                    break
            else:
                return
            contact = ("wix", str(link.contact_id))
            try:
                if side == "poweroffice":
                    source = rng.choice(persons)
                    po.edit(PO_RESOURCE[source[0]], int(source[1]), {"LastName": value})
                    targets = [contact, *(m for m in persons if m != source)]
                else:
                    source = contact
                    last = _value(po, wix, contact, "last_name")
                    wix.edit(contact[1], {"name": {"first": value, "last": last}})
                    targets = persons
            except httpx.HTTPStatusError as exc:
                into.refused.append(
                    {"edit": i, "side": side, "odd": is_odd, "status": exc.response.status_code}
                )
                continue
            into.made.append(Edit(i, side, link.link_id, prop, value, source, targets, is_odd))
    finally:
        po.close()
        wix.close()


def check_edits(stack: Stack, edits: list[Edit]) -> list[dict[str, Any]]:
    """Edits whose value is not (or no longer) at their source and every target."""
    lost: list[dict[str, Any]] = []
    with PowerOfficeSimulatorAdmin(stack.poweroffice_url) as po, WixAdmin(stack.wix_url) as wix:
        for edit in edits:
            wrong = [
                where[0]
                for where in (edit.source, *edit.targets)
                if not same(kind_of(edit.prop), edit.value, _value(po, wix, where, edit.prop))
            ]
            if wrong:
                lost.append(
                    {
                        "edit": edit.index,
                        "side": edit.side,
                        "link": edit.link_id,
                        "odd_name": edit.odd,
                        "value": repr(edit.value) if edit.odd else edit.value,
                        "wrong_at": wrong,
                    }
                )
    return lost


# -- webhooks ------------------------------------------------------------------------------------


def forged_webhooks(
    url: str, count: int, contact: dict[str, Any] | None, marker: str
) -> dict[str, Any]:
    """Deliveries that must be refused: signed by another key, HS256, ``alg: none``, garbage.

    The signed ones carry a real contact with its first name set to ``marker`` — if one were
    accepted, the marker would spread to the linked records (checked at the end)."""
    attacker = WebhookSigner()
    statuses: collections.Counter[str] = collections.Counter()
    accepted = 0
    for i in range(count):
        kind = ("other_key", "hs256", "alg_none", "garbage")[i % 4]
        body = b"not a jwt at all"
        if contact is not None and kind != "garbage":
            entity = {
                **contact,
                "revision": int(contact.get("revision", 1)) + 1,
                "info": {
                    **contact.get("info", {}),
                    "name": {**contact.get("info", {}).get("name", {}), "first": marker},
                },
            }
            change = ContactChange("updated", str(contact["id"]), entity, {"identityType": "APP"})
            env, _ = envelope(change, DEFAULT_INSTANCE_ID)
            claims = {
                "data": json.dumps(env),
                "iat": int(time.time()),
                "exp": int(time.time()) + 300,
            }
            if kind == "other_key":
                body = attacker.envelope_jwt(env).encode()
            elif kind == "hs256":
                body = jwt.encode(claims, "guessed-secret-of-32-bytes-or-more!!", "HS256").encode()
            else:
                header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}')
                payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
                body = header + b"." + payload + b"."
        code = _post(url, body)
        statuses[str(code)] += 1
        accepted += code == 200
    return {"sent": count, "statuses": dict(statuses), "accepted": accepted}


def oversize_webhooks(url: str, count: int) -> dict[str, Any]:
    """Bodies of several MB (refused with 401/413, and the receiver stays up)."""
    statuses: collections.Counter[str] = collections.Counter()
    accepted = 0
    for i in range(count):
        body = (b"eyJhbGciOiJSUzI1NiJ9." + b"A" * OVERSIZE_BYTES + b".sig")[: OVERSIZE_BYTES + i]
        code = _post(url, body)
        statuses[str(code)] += 1
        accepted += code == 200
    return {
        "sent": count,
        "bytes": OVERSIZE_BYTES,
        "statuses": dict(statuses),
        "accepted": accepted,
    }


def _post(url: str, body: bytes, patience: float = 30.0) -> int:
    """The receiver's answer; while it is down (killed) or starting (503), try again for a while
    so the delivery is judged by a running receiver. 0: no answer at all."""
    deadline = time.monotonic() + patience
    while True:
        try:
            code = httpx.post(
                url, content=body, headers={"content-type": "text/plain"}, timeout=30
            ).status_code
        except httpx.HTTPError:
            code = 0
        if code not in (0, 503) or time.monotonic() > deadline:
            return code
        time.sleep(1.0)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Options:
    profile: Profile
    records: int
    seed: int
    timeout: float
    run_dir: Path
    infra: InfraControl | None
    report: Path | None = None
    # Idle but incomplete this long after the faults: something is lost, stop waiting.
    patience: float = IDLE_PATIENCE


class ChaosRun:
    def __init__(self, options: Options, bootstrap: str, dsn: str) -> None:
        self.o = options
        self.p = options.profile
        self.rng = random.Random(options.seed)
        self.started = time.monotonic()
        self.deadline = self.started + options.timeout
        help_text = {system: _simulator_help(system) for system in ("poweroffice", "wix")}
        self.simulator_args, self.realism = faults.realism_args(self.p.realism_options(), help_text)
        tight = self.p.tight_limits
        self.stack = Stack(
            bootstrap,
            dsn,
            options.run_dir,
            lift_limits=not tight,
            extra_env=dict(faults.TIGHT_LIMITS_ENV) if tight else {},
            simulator_args=self.simulator_args,
        )
        self.layout = TopicLayout(prefix=self.stack.topic_prefix, partitions=3)
        self.restarter = Restarter(self.stack, self.started)
        self.killer = Killer(self.restarter, faults.kill_plan(self.p, self.rng))
        self.edits = Edits()
        self.injected: collections.Counter[str] = collections.Counter()
        self.poison: list[kafkaview.Landed] = []
        self.poison_cursors: list[kafkaview.Landed] = []
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.failures: list[str] = []
        self.phases: dict[str, float] = {}
        self.report: dict[str, Any] = {}
        self.total = 0
        self.seeded = Seeded()
        self.forged_marker = f"Forged{self.rng.randrange(10**6):06d}"
        self.api_lock = threading.Lock()
        self.api_faults_on = False
        self.storm_timer: threading.Timer | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def phase(self, name: str, since: float) -> None:
        self.phases[name] = round(time.monotonic() - since, 1)

    def sync_state(self) -> mapperdb.SyncState | None:
        try:
            return mapperdb.sync_state(self.stack.database_dsn)
        except psycopg.OperationalError:  # PostgreSQL down (killed) or restarting
            return None

    def stranded(self) -> list[dict[str, Any]] | None:
        try:
            positions = kafkaview.group_positions(
                self.stack.kafka_bootstrap,
                kafkaview.consumed_topics(self.layout, self.stack.topic_prefix),
            )
        except KafkaError:  # Kafka down (killed), or a group coordinator moving
            return None
        return kafkaview.stranded(positions)

    def quiet(self, with_edits: bool) -> tuple[bool, bool]:
        """``(idle, complete)``: idle — nothing pending, nothing unproduced, every consumer group
        committed up to the end; complete — every record linked or in review (and every edit
        arrived)."""
        state = self.sync_state()
        if state is None:
            return False, False
        idle = (
            state.pending_commands == 0 and state.unproduced_outbox == 0 and self.stranded() == []
        )
        complete = state.linked + state.in_review >= self.total
        if complete and with_edits:
            complete = not check_edits(self.stack, self.edits.made)
        return idle, complete

    def wait_quiet(
        self, what: str, with_edits: bool, limit: float, patience: float | None = None
    ) -> bool:
        """Until idle and complete for ``QUIET_SECONDS``; False (and a failure) after ``limit``,
        or after ``patience`` seconds of idle-but-incomplete (nothing left that could finish
        it: an edit or a record is lost, the run need not wait for its time bound)."""
        deadline = min(self.deadline, time.monotonic() + limit)
        stable_since: float | None = None
        idle_since: float | None = None
        last_print = 0.0
        while time.monotonic() < deadline:
            idle, complete = self.quiet(with_edits)
            if idle and complete:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= QUIET_SECONDS:
                    return True
            else:
                stable_since = None
            idle_since = (idle_since or time.monotonic()) if idle and not complete else None
            if patience is not None and idle_since and time.monotonic() - idle_since > patience:
                self.failures.append(
                    f"stuck: {what} not reached — the pipeline has been idle for "
                    f"{patience:.0f}s with records or edits still missing"
                )
                return False
            if time.monotonic() - last_print >= 10:
                self.progress(what)
                last_print = time.monotonic()
            time.sleep(1.0)
        self.failures.append(f"timeout: {what} not reached within the run's time bound")
        return False

    def wait_linked(self, fraction: float, limit: float) -> None:
        """Until ``fraction`` of the records are linked (or ``limit`` seconds passed)."""
        deadline = min(self.deadline, time.monotonic() + limit)
        last_print = time.monotonic()
        while time.monotonic() < deadline:
            state = self.sync_state()
            if state is not None and state.linked >= fraction * self.total:
                return
            if time.monotonic() - last_print >= 10:
                self.progress(f"initial sync, until {fraction:.0%} linked")
                last_print = time.monotonic()
            time.sleep(0.5)

    def progress(self, what: str) -> None:
        state = self.sync_state()
        linked = f"{state.linked}/{self.total}" if state else "?"
        pending = state.pending_commands if state else "?"
        kills = sum(self.restarter.kills.values())
        say(
            f"[{self.elapsed():6.1f}s] {what}: linked {linked}, pending {pending}, "
            f"kills {kills}, unexpected exits {len(self.restarter.unexpected)}"
        )

    # -- faults ----------------------------------------------------------------------------------
    def install_api_faults(self) -> None:
        self.api_faults_on = True
        with PowerOfficeSimulatorAdmin(self.stack.poweroffice_url) as po:
            for fault in self.p.api_faults:
                if fault.system == "poweroffice":
                    po.add_fault(dict(fault.rule))
        with WixAdmin(self.stack.wix_url) as wix:
            for fault in self.p.api_faults:
                if fault.system == "wix":
                    wix.add_fault(**fault.rule)

    def storm(self) -> None:
        """A 429 storm on both APIs for ``storm_seconds``; then the ordinary API faults again."""
        with self.api_lock:
            if not self.api_faults_on:
                return
            with PowerOfficeSimulatorAdmin(self.stack.poweroffice_url) as po:
                po.add_fault(dict(faults.storm("poweroffice").rule))
            with WixAdmin(self.stack.wix_url) as wix:
                wix.add_fault(**faults.storm("wix").rule)
            self.injected["api_429_storm"] += 1
            self.storm_timer = threading.Timer(self.p.storm_seconds, self._end_storm)
            self.storm_timer.daemon = True
            self.storm_timer.start()

    def _end_storm(self) -> None:
        with self.api_lock:
            if self.api_faults_on:
                self._clear_api_rules()
                self.install_api_faults()

    def _clear_api_rules(self) -> None:
        with PowerOfficeSimulatorAdmin(self.stack.poweroffice_url) as po:
            po.clear_faults()
        with WixAdmin(self.stack.wix_url) as wix:
            wix.clear_faults()

    def clear_api_faults(self) -> None:
        with self.api_lock:
            self.api_faults_on = False
            if self.storm_timer is not None:
                self.storm_timer.cancel()
            self._clear_api_rules()

    def api_faults_injected(self) -> dict[str, dict[str, int]]:
        with PowerOfficeSimulatorAdmin(self.stack.poweroffice_url) as po:
            po_counts = dict(po.counters().get("faults_injected", {}))
        with WixAdmin(self.stack.wix_url) as wix:
            wix_counts = dict(wix.counters().get("faultsInjected", {}))
        return {"poweroffice": po_counts, "wix": wix_counts}

    def kafka_outage(self, during: Callable[[], None] | None = None) -> None:
        if self.o.infra is None:
            return
        say(f"kill -9 Kafka for {self.p.kafka_outage_seconds:.0f}s")
        down = time.monotonic()
        self.o.infra.run("kafka-kill")
        victim = faults.outage_victim(self.injected["kafka_kill_9"])
        self.injected["kafka_kill_9"] += 1
        # A service restarted while the broker is down (a pod rescheduled during the outage),
        # at once, so it starts without a broker for (almost) the whole outage.
        if self.restarter.kill(victim, 0.5):
            say(f"kill -9 {victim} while Kafka is down (restarted at once)")
            self.injected["service_kill_9_during_kafka_outage"] += 1
        if during is not None:
            during()
        time.sleep(max(0.0, self.p.kafka_outage_seconds - (time.monotonic() - down)))
        self.o.infra.run("kafka-start")
        say("Kafka is back")

    def postgres_kill(self) -> None:
        if self.o.infra is None:
            return
        say("kill -9 PostgreSQL")
        self.o.infra.run("postgres-kill")
        self.injected["postgres_kill_9"] += 1
        time.sleep(2)
        self.o.infra.run("postgres-start")
        say("PostgreSQL is back (crash recovery done)")

    def poison_round(self) -> None:
        payloads = faults.poison_payloads(self.p.poison_per_topic, self.rng)
        groups = kafkaview.consumed_topics(self.layout, self.stack.topic_prefix)
        for topic in sorted({t for topics in groups.values() for t in topics}):
            self.poison += kafkaview.produce_poison(self.stack.kafka_bootstrap, topic, payloads)
        # The cursors topic is read by the extractor at start-up (reported, not asserted).
        self.poison_cursors += kafkaview.produce_poison(
            self.stack.kafka_bootstrap, self.layout.cursors, payloads[:1]
        )
        self.injected["poison_messages"] = len(self.poison) + len(self.poison_cursors)

    def webhook_round(self, contact: dict[str, Any] | None) -> None:
        url = f"{self.stack.public_url('extractor')}/webhooks/wix"
        for kind, result in (
            ("forged", forged_webhooks(url, self.p.forged_webhooks, contact, self.forged_marker)),
            ("oversize", oversize_webhooks(url, self.p.oversize_webhooks)),
        ):
            into = self.webhooks.setdefault(kind, {"sent": 0, "statuses": {}, "accepted": 0})
            into["sent"] += result["sent"]
            into["accepted"] += result["accepted"]
            for status, n in result["statuses"].items():
                into["statuses"][status] = into["statuses"].get(status, 0) + n
            self.injected[f"{kind}_webhooks"] += result["sent"]

    def a_linked_contact(self, avoid: set[str]) -> dict[str, Any] | None:
        with contextlib.suppress(Exception):
            for link in mapperdb.links(self.stack.database_dsn):
                if link.status == "active" and link.contact_id and link.link_id not in avoid:
                    with WixAdmin(self.stack.wix_url) as wix:
                        return wix.contact(str(link.contact_id))
        return None

    # -- phases ----------------------------------------------------------------------------------
    def setup(self) -> Expectation:
        since = time.monotonic()
        self.stack.create_database()
        self.stack.start_simulators()
        data = generate(self.o.records, self.o.seed)
        self.seeded = seed_simulators(data, self.stack.poweroffice_url, self.stack.wix_url)
        counts = self.seeded.counts()
        self.total = counts["employees"] + counts["customers"] + counts["contact_persons"]
        self.stack.provision_topics()
        self.stack.start_services()
        self.phase("setup", since)
        expected = Expectation.of(data.expectations)
        self.report["expected"] = {
            "linked_records": expected.linked_records,
            "contacts_created": expected.created_contacts,
            "contacts_matched": expected.matched_existing_contacts,
            "in_review": expected.review_items,
        }
        say(f"seeded {counts}; expected {self.report['expected']}")
        return expected

    def initial_sync(self) -> bool:
        since = time.monotonic()
        self.restarter.start()
        self.install_api_faults()
        self.killer.start()
        self.poison_round()
        self.webhook_round(None)
        if self.p.storms:
            self.storm()
        if self.p.kafka_outages >= 1:
            self.wait_linked(0.25, 120)
            self.kafka_outage()
        if self.p.postgres_kills:
            self.wait_linked(0.6, 120)
            self.postgres_kill()
        for _ in range(1, self.p.storms):
            self.wait_linked(0.8, 30)
            self.storm()
            time.sleep(self.p.storm_seconds)
        ok = self.wait_quiet("initial sync under faults", False, self.remaining() - 240)
        self.phase("initial_sync", since)
        return ok

    def edit_phase(self) -> None:
        since = time.monotonic()
        links = [
            link
            for link in mapperdb.links(self.stack.database_dsn)
            if link.status == "active" and link.contact_id
        ]
        odd = faults.odd_names(self.p.odd_name_edits, self.rng)
        self.killer.edits_started.set()
        total = 2 * self.p.edits
        first = total // 2
        make_edits(self.stack, links, first, odd, self.rng, 0, self.edits)
        contact = self.a_linked_contact({e.link_id for e in self.edits.made})
        self.webhook_round(contact)

        def rest() -> None:
            make_edits(self.stack, links, total - first, odd, self.rng, first, self.edits)

        if self.p.kafka_outages >= 2:
            self.kafka_outage(during=rest)
        else:
            rest()
        say(
            f"{len(self.edits.made)} edits made ({sum(e.odd for e in self.edits.made)} with odd "
            f"names), {len(self.edits.refused)} refused by the source system"
        )
        self.poison_round()
        if self.p.storms:
            self.storm()
        self.phase("edits", since)

    def end_faults(self) -> float:
        """Stop injecting; returns when the last fault ended (monotonic)."""
        if not self.killer.edits_started.is_set():  # no edit phase (the sync timed out)
            self.killer.stop()
        self.killer.join(timeout=max(1.0, min(self.remaining() - 120, 600)))
        if self.killer.is_alive():
            self.failures.append(
                f"timeout: only {self.killer.done} of {len(self.killer.plan)} planned kills "
                "happened within the run's time bound"
            )
            self.killer.stop()
        while not self.restarter.idle() and self.remaining() > 0:
            time.sleep(0.2)
        self.clear_api_faults()
        return time.monotonic()

    def measure(self, expected: Expectation, last_fault: float | None) -> dict[str, Any]:
        r = self.report
        r["converged"] = last_fault is not None and "converge" in self.phases
        verification = self.verification()
        with PowerOfficeSimulatorAdmin(self.stack.poweroffice_url) as po:
            records = collect_records(po)
        with WixAdmin(self.stack.wix_url) as wix:
            contacts = wix.contacts()
        summary = reconcile(
            records,
            contacts,
            {str(c["id"]) for c in self.seeded.wix_contacts},
            mapperdb.links(self.stack.database_dsn),
            mapperdb.review_records(self.stack.database_dsn),
        )
        r["counts"] = {
            "records": summary["records"],
            "linked_records": summary["linked_records"],
            "contacts_created": summary["contacts_created"],
            "contacts_matched": summary["contacts_matched"],
            "in_review": sum(flow["in_review"] for flow in summary["flows"].values()),
            "duplicate_contacts": summary["duplicate_contacts"],
            "duplicate_groups": summary["duplicate_groups"],
            "linked_more_than_once": summary["linked_more_than_once"],
            "unlinked_records": summary["unlinked_records"][:20],
            "flows": summary["flows"],
        }
        lost = check_edits(self.stack, self.edits.made)
        r["edits"] = {
            "made": len(self.edits.made),
            "poweroffice_side": sum(1 for e in self.edits.made if e.side == "poweroffice"),
            "wix_side": sum(1 for e in self.edits.made if e.side == "wix"),
            "odd_names": sum(1 for e in self.edits.made if e.odd),
            "refused_by_source": self.edits.refused,
            "arrived": len(self.edits.made) - len(lost),
            "lost": lost,
        }
        r["stranded_partitions"] = self.stranded()
        # The reconciliation of both systems: a second opinion next to ``tether verify``.
        verification["reconcile"] = {
            "divergent_links": summary["divergent_contacts"],
            "value_mismatches": summary["value_mismatches"],
            "links_to_missing_contacts": summary["links_to_missing_contacts"],
            "examples": summary["mismatch_examples"][:10],
        }
        verification.setdefault("divergent_links", summary["divergent_contacts"])
        r["verification"] = verification
        letters = kafkaview.dead_letters(self.stack.kafka_bootstrap, self.layout, AvroCodec())
        sources = {
            (d.get("source_topic"), d.get("source_partition"), d.get("source_offset"))
            for d in letters
        }
        missing = [
            {"topic": p.topic, "partition": p.partition, "offset": p.offset}
            for p in self.poison
            if (p.topic, p.partition, p.offset) not in sources
        ]
        r["poison"] = {
            "produced": len(self.poison),
            "dead_lettered": len(self.poison) - len(missing),
            "not_dead_lettered": missing,
            "cursors_topic": {
                "produced": len(self.poison_cursors),
                "dead_lettered": sum(
                    1 for p in self.poison_cursors if (p.topic, p.partition, p.offset) in sources
                ),
                "asserted": False,
            },
        }
        by_stage: collections.Counter[str] = collections.Counter(d["stage"] for d in letters)
        by_class: collections.Counter[str] = collections.Counter(
            str(d.get("error_class")) for d in letters
        )
        seen: collections.Counter[tuple[Any, ...]] = collections.Counter(
            (d["stage"], d.get("source_topic"), d.get("source_partition"), d.get("source_offset"))
            for d in letters
            if d.get("source_topic")
        )
        r["dead_letters"] = {
            "total": len(letters),
            # The same input parked twice (a kill -9 between the park and the offset commit):
            # dead letters are at-least-once. Reported, not asserted.
            "parked_more_than_once": sum(1 for n in seen.values() if n > 1),
            "by_stage": dict(by_stage),
            "by_error_class": dict(by_class),
        }
        forged_arrived = any(
            read_hub(c).get("first_name") == self.forged_marker for c in contacts
        ) or any(
            read_member(resource, record).get("first_name") == self.forged_marker
            for resource, rows in records.items()
            for record in rows
        )
        r["webhooks"] = {**self.webhooks, "forged_value_arrived": forged_arrived}
        r["kills"] = dict(self.restarter.kills)
        r["restarts"] = dict(self.restarter.restarts)
        r["unexpected_exits"] = self.restarter.unexpected
        r["faults_injected"] = {
            **dict(self.injected),
            "service_kill_9": sum(self.restarter.kills.values()),
            "odd_name_edits": r["edits"]["odd_names"],
            "api": self.api_faults_injected(),
        }
        # The headline figures, also found in their sections above.
        r["duplicates"] = r["counts"]["duplicate_contacts"]
        r["lost_edits"] = len(lost)
        r["divergent_links"] = verification.get("divergent_links")
        r["stranded_partition_count"] = (
            None if r["stranded_partitions"] is None else len(r["stranded_partitions"])
        )
        r["seconds_to_converge_after_last_fault"] = (
            self.phases.get("converge") if r["converged"] else None
        )
        return r

    def verify_cycle(self) -> dict[str, Any]:
        """One ``tether verify`` cycle as an operator runs it (it repairs what differs)."""
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "verify"],
            env=self.stack.service_env("verify"),
            capture_output=True,
            text=True,
            timeout=max(30.0, min(300.0, self.remaining())),
            check=False,
        )
        if done.returncode not in (0, 1):
            return {"error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    def verification(self) -> dict[str, Any]:
        """One verification cycle, then the pipeline settles, then the divergent links counted.

        With ``tether verify`` (services/verify): its first cycle compares and repairs, the
        second one's count is the figure. Without it: the reconciliation of both systems
        (services/demo/verify.py), which compares but does not repair."""
        if importlib.util.find_spec("services.verify.main") is None:
            return {"method": "reconcile: `tether verify` not available"}
        first = self.verify_cycle()
        self.wait_quiet(
            "convergence after the verification cycle's repairs", True, 180, self.o.patience
        )
        second = self.verify_cycle()
        return {
            "method": "tether verify (one cycle with repairs, then a second to count)",
            "first_cycle_divergent_links": first.get("divergent_links"),
            "first_cycle_repair_events": first.get("repair_events"),
            "first_cycle": {k: first.get(k) for k in ("by_status", "error") if k in first},
            "first_cycle_divergent": first.get("divergent", [])[:10],
            "divergent_links": second.get("divergent_links"),
            "second_cycle": {
                k: second.get(k) for k in ("by_status", "error", "divergent") if k in second
            },
        }

    def execute(self, hold: Callable[[Stack], None] | None = None) -> dict[str, Any]:
        p = self.p
        self.report.update(
            {
                "profile": p.name,
                "seed": self.o.seed,
                "records": self.o.records,
                "realism_options": self.realism,
                "simulator_args": self.simulator_args,
                "tight_limits": p.tight_limits,
                "infra_faults": self.o.infra is not None,
            }
        )
        say(f"profile {p.name}: {p.description}; logs in {self.o.run_dir}")
        last_fault: float | None = None
        codes: dict[str, Any] = {}
        try:
            expected = self.setup()
            if self.initial_sync():
                self.edit_phase()
            last_fault = self.end_faults()
            say("faults ended; waiting for convergence")
            since = time.monotonic()
            if self.wait_quiet(
                "convergence after the last fault", True, self.remaining(), self.o.patience
            ):
                self.phase("converge", since)
            self.report["total_records"] = self.total
            self.measure(expected, last_fault)
            self.report["phases"] = self.phases
            self.restarter.stop()
            self.killer.stop()
            if hold is not None:  # the demo: show the result now, stop on Ctrl-C
                failures = self.failures + faults.verdict(self.report, expected)
                print_result({**self.report, "failures": failures, "passed": not failures})
                hold(self.stack)
        finally:
            self.restarter.stop()
            self.killer.stop()
            codes = self.stack.stop()
            self.stack.drop_database()
        self.report["final_exit_codes"] = {name: codes.get(name) for name in SERVICES}
        unclean = {n: c for n, c in self.report["final_exit_codes"].items() if c != 0}
        failures = self.failures + faults.verdict(self.report, expected)
        if unclean:
            failures.append(f"services that did not stop cleanly on SIGTERM: {unclean}")
        self.report["failures"] = failures
        self.report["passed"] = not failures
        self.report["duration_seconds"] = round(self.elapsed(), 1)
        return self.report


def _simulator_help(system: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "simulate", system, "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
    )
    return result.stdout


def run(options: Options, hold: Callable[[Stack], None] | None = None) -> dict[str, Any]:
    bootstrap = os.environ["TETHER_KAFKA_BOOTSTRAP_SERVERS"]
    dsn = os.environ["TETHER_POSTGRES_DSN"]
    report = ChaosRun(options, bootstrap, dsn).execute(hold)
    if options.report is not None:
        options.report.write_text(json.dumps(report, indent=2, ensure_ascii=False))
        say(f"report written to {options.report}")
    return report


def print_result(report: dict[str, Any]) -> None:
    counts = report.get("counts", {})
    say(
        f"records {counts.get('records')} linked {counts.get('linked_records')} created "
        f"{counts.get('contacts_created')} matched {counts.get('contacts_matched')} in review "
        f"{counts.get('in_review')} duplicates {counts.get('duplicate_contacts')} | edits "
        f"{report.get('edits', {}).get('made')} lost {len(report.get('edits', {}).get('lost', []))}"
        f" | kills {report.get('kills')} | poison {report.get('poison', {}).get('produced')} "
        f"dead-lettered {report.get('poison', {}).get('dead_lettered')} | converged after the "
        f"last fault in {report.get('seconds_to_converge_after_last_fault')}s"
    )
    if report["passed"]:
        say("PASSED: exact counts, no duplicates, every edit arrived, nothing stranded")
    else:
        say(f"FAILED ({len(report['failures'])} assertion(s)):")
        for failure in report["failures"]:
            say(f"  - {failure}")


def demo_with_faults(args: argparse.Namespace, run_dir: Path) -> int:
    """``tether demo --faults``: the demo's sync and edits under the ``mild`` profile; then, unless
    ``--exit-after-sync``, the stack keeps running (faults off) until Ctrl-C."""
    profile = dataclasses.replace(faults.PROFILES["mild"], edits=max(1, args.edits // 2))
    options = Options(
        profile=profile,
        records=args.records,
        seed=args.seed,
        timeout=args.timeout,
        run_dir=run_dir,
        infra=None,
        report=args.report,
    )

    def keep_running(stack: Stack) -> None:
        say(
            "\nTether keeps running (faults off). Edit a record and watch it arrive:\n"
            f"  tether edit poweroffice employees <Id> LastName=Nordmann "
            f"--url {stack.poweroffice_url}\nCtrl-C stops everything."
        )
        while all(p.running for p in stack.processes.values()):
            time.sleep(1)

    try:
        report = run(options, hold=None if args.exit_after_sync else keep_running)
    except KeyboardInterrupt:
        return 0
    print_result(report)
    return 0 if report["passed"] else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tether chaos",
        description="Run the whole pipeline under faults and assert that it converges exactly "
        "(make chaos: its own Kafka and durable PostgreSQL).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--profile", choices=sorted(faults.PROFILES), default="chaos")
    parser.add_argument("--records", type=int, help="PowerOffice records (default: the profile's)")
    parser.add_argument("--seed", type=int, default=42, help="data and fault schedule seed")
    parser.add_argument("--timeout", type=float, default=1140.0, help="bound of the whole run (s)")
    parser.add_argument("--report", type=Path, help="write the JSON report to this file")
    parser.add_argument("--run-dir", type=Path, help="where logs go (default: a temp dir)")
    parser.add_argument(
        "--no-infra-faults",
        action="store_true",
        help="no Kafka/PostgreSQL kills (e.g. on shared infrastructure)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not os.environ.get("TETHER_KAFKA_BOOTSTRAP_SERVERS") or not os.environ.get(
        "TETHER_POSTGRES_DSN"
    ):
        print("tether chaos needs Kafka and PostgreSQL: run it with `make chaos`", file=sys.stderr)
        return 2
    profile = faults.PROFILES[args.profile]
    infra = None if args.no_infra_faults else InfraControl.from_environment()
    needs_infra = bool(profile.kafka_outages or profile.postgres_kills)
    if infra is None and needs_infra and not args.no_infra_faults:
        print(
            "tether chaos kills Kafka and PostgreSQL: it needs its own infrastructure "
            "(TETHER_INFRA_DIR other than the shared one; `make chaos` sets it up) or "
            "--no-infra-faults",
            file=sys.stderr,
        )
        return 2
    options = Options(
        profile=profile,
        records=args.records or profile.records,
        seed=args.seed,
        timeout=args.timeout,
        run_dir=args.run_dir or Path(tempfile.mkdtemp(prefix="tether-chaos-")),
        infra=infra,
        report=args.report,
    )
    signal.signal(signal.SIGTERM, _interrupt)  # stop the stack's processes on the way out
    try:
        report = run(options)
    except KeyboardInterrupt:
        print("tether chaos: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    print_result(report)
    return 0 if report["passed"] else 1

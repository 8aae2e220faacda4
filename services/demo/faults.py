"""What the chaos suite and ``tether demo --faults`` do to the pipeline: profiles and schedule.

A **profile** names a set of faults at a level: ``chaos`` (``tether chaos``: broker and database
kill -9, ≥ 20 service kill -9s, API faults, 429 storms, poison bytes, forged and oversize
webhooks, odd names), ``mild`` (``tether demo --faults``: the same kinds at a milder level, no
broker or database kills — the demo may run on infrastructure other people use) and ``small``
(the CI version in ``tests/e2e/test_chaos_small.py``).

Everything random is drawn from one seeded ``random.Random``, so a run's schedule (which service
is killed when, which poison bytes, which odd names) is repeatable from its seed; only the
pipeline's timing is not.

The **simulator realism options** (``REALISM``) are the named place where the simulators' own
fault options are switched on (PowerOffice reads lagging writes, the Wix extended-fields endpoint
refused, a real limit lower than the configured budget, 429s counting against the window). An
option is passed to a simulator only when that simulator's ``--help`` lists its flag; the others
are reported as ``unavailable`` (``realism_args``).

``verdict`` turns a finished run's report into the list of failed assertions.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("extractor", "mapper", "loader")

#: The PowerOffice and Wix API paths the API faults hit (the token endpoint is left alone).
API_PATHS = {"poweroffice": r"^/v2/", "wix": r"^/contacts/v4/contacts"}


@dataclass(frozen=True)
class ApiFault:
    """One ``simkit.FaultRule`` for one simulator (``rule`` holds the rule's fields)."""

    system: str
    rule: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.rule["kind"])


def _api_faults(level: float, timeouts: bool) -> tuple[ApiFault, ...]:
    """500s, dropped connections, lost responses (and timeouts) on both APIs, at ``level``.

    Timeouts are bounded by ``times``: each holds a request longer than the client's timeout.
    """
    faults: list[ApiFault] = []
    for system, path in API_PATHS.items():
        faults += [
            ApiFault(system, {"kind": "status", "status": 500, "path": path, "probability": level}),
            ApiFault(system, {"kind": "status", "status": 503, "path": path, "probability": level}),
            ApiFault(system, {"kind": "drop", "path": path, "probability": level / 2}),
            # The "did my write go through?" case: the write happens, the answer is lost.
            ApiFault(
                system,
                {
                    "kind": "lose_response",
                    "status": 0,
                    "method": "POST",
                    "path": path,
                    "probability": level,
                },
            ),
            ApiFault(
                system,
                {
                    "kind": "lose_response",
                    "status": 502,
                    "method": "PATCH",
                    "path": path,
                    "probability": level,
                },
            ),
        ]
        if timeouts:
            faults.append(
                ApiFault(
                    system,
                    {
                        "kind": "timeout",
                        "seconds": 35.0 if system == "poweroffice" else 12.0,
                        "path": path,
                        "probability": level / 4,
                        "times": 3,
                    },
                )
            )
    return tuple(faults)


def storm(system: str) -> ApiFault:
    """A 429 storm: every API request of ``system`` is refused with 429 (no Retry-After) until
    the rule is removed — a storm lasts a time (``Profile.storm_seconds``), not a count: a client
    that backs off must not make it longer."""
    return ApiFault(system, {"kind": "rate_limit", "path": API_PATHS[system]})


@dataclass(frozen=True)
class RealismOption:
    """A simulator realism option: ``flag`` (with ``value``) on ``system``'s simulator.

    ``group``: ``realism`` (lag), ``limits`` (real limits below the configured budget: they come
    with ``TIGHT_LIMITS_ENV`` and slow the run down) or ``permissions`` (a refused permission;
    in no profile)."""

    name: str
    system: str
    flag: str
    value: str | None = None
    group: str = "realism"

    def args(self) -> list[str]:
        return [self.flag] if self.value is None else [self.flag, self.value]


#: The simulator realism options the issue asks for. Flags a simulator does not (yet) have are
#: reported as unavailable, never passed (see ``realism_args``).
REALISM: tuple[RealismOption, ...] = (
    RealismOption("poweroffice_read_lag", "poweroffice", "--read-lag", "2"),
    # Off in every profile: with the permission refused, records with neither e-mail nor phone
    # fall back to a name check (docs/wix-decisions.md) that can adopt a namesake's contact when
    # two such records share a name (`tether simulate wix --extended-fields-forbidden` shows it).
    RealismOption(
        "wix_extended_fields_forbidden", "wix", "--extended-fields-forbidden", None, "permissions"
    ),
    # The real Wix limit (240 per 6 s = 2,400/min) lower than the configured budget (3,000/min,
    # ``TIGHT_LIMITS_ENV``); a short window keeps Retry-After waits short.
    RealismOption("wix_real_limit_lower", "wix", "--rate-limit", "240", "limits"),
    RealismOption("wix_real_limit_window", "wix", "--rate-window", "6", "limits"),
    RealismOption("wix_429_counts_against_window", "wix", "--count-throttled", None, "limits"),
    # The real PowerOffice limit (8 req/s) lower than the configured budget (10 req/s).
    RealismOption("poweroffice_real_limit_lower", "poweroffice", "--rate-limit", "8", "limits"),
    RealismOption(
        "poweroffice_429_counts_against_window",
        "poweroffice",
        "--count-throttled",
        None,
        "limits",
    ),
)

#: The clients' configured budgets when the limits are tight: above the simulators' real limits
#: (PowerOffice 8 req/s real, 10 configured; Wix 2,400/min real, 3,000 configured).
TIGHT_LIMITS_ENV = {
    "TETHER_POWEROFFICE_REQUESTS_PER_SECOND": "10",
    "TETHER_WIX_REQUESTS_PER_MINUTE": "3000",
}


def realism_args(
    options: Sequence[RealismOption], help_text: Mapping[str, str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Simulator arguments per system for the options whose flag the simulator's ``--help``
    (``help_text[system]``) lists, and the status of every option (``on``/``unavailable``)."""
    args: dict[str, list[str]] = {}
    status: dict[str, str] = {}
    for option in options:
        available = f"{option.flag} " in help_text.get(option.system, "") or (
            f"{option.flag}\n" in help_text.get(option.system, "")
        )
        status[option.name] = "on" if available else "unavailable"
        if available:
            args.setdefault(option.system, []).extend(option.args())
    return args, status


@dataclass(frozen=True)
class Profile:
    name: str
    records: int
    edits: int  # per side
    service_kills: int
    kill_interval: tuple[float, float]  # seconds between two kills (uniform)
    kafka_outages: int  # 0, 1 (mid-sync) or 2 (mid-sync and during the edits)
    kafka_outage_seconds: float
    postgres_kills: int
    api_fault_level: float
    storms: int  # 429 storms (both systems at once)
    storm_seconds: float
    poison_per_topic: int
    forged_webhooks: int
    oversize_webhooks: int
    odd_name_edits: int
    realism: bool  # the simulators' realism options (read lag, extended fields refused)
    tight_limits: bool  # real limits below the configured budgets (REALISM group "limits")
    api_timeouts: bool
    description: str = ""

    @property
    def api_faults(self) -> tuple[ApiFault, ...]:
        if self.api_fault_level <= 0:
            return ()
        return _api_faults(self.api_fault_level, self.api_timeouts)

    def realism_options(self) -> list[RealismOption]:
        groups = {"realism"} if self.realism else set()
        groups |= {"limits"} if self.tight_limits else set()
        return [option for option in REALISM if option.group in groups]


PROFILES: dict[str, Profile] = {
    "chaos": Profile(
        name="chaos",
        records=2000,
        edits=20,
        service_kills=21,
        kill_interval=(4.0, 10.0),
        kafka_outages=2,
        kafka_outage_seconds=30.0,
        postgres_kills=1,
        api_fault_level=0.03,
        storms=3,
        storm_seconds=20.0,
        poison_per_topic=3,
        forged_webhooks=5,
        oversize_webhooks=3,
        odd_name_edits=8,
        realism=True,
        tight_limits=True,
        api_timeouts=True,
        description="make chaos: every fault of issue #11 on its own Kafka and PostgreSQL",
    ),
    "mild": Profile(
        name="mild",
        records=2000,
        edits=10,
        service_kills=3,
        kill_interval=(8.0, 15.0),
        kafka_outages=0,
        kafka_outage_seconds=0.0,
        postgres_kills=0,
        api_fault_level=0.01,
        storms=1,
        storm_seconds=10.0,
        poison_per_topic=1,
        forged_webhooks=2,
        oversize_webhooks=1,
        odd_name_edits=4,
        realism=True,
        tight_limits=False,
        api_timeouts=True,
        description="tether demo --faults: the same kinds, milder, no broker or database kills",
    ),
    "small": Profile(
        name="small",
        records=300,
        edits=4,
        service_kills=2,
        kill_interval=(3.0, 6.0),
        kafka_outages=0,
        kafka_outage_seconds=0.0,
        postgres_kills=0,
        api_fault_level=0.03,
        storms=1,
        storm_seconds=5.0,
        poison_per_topic=1,
        forged_webhooks=1,
        oversize_webhooks=1,
        odd_name_edits=1,
        realism=False,
        tight_limits=False,
        api_timeouts=False,
        description="the CI version (tests/e2e/test_chaos_small.py), on the shared infrastructure",
    ),
}


# -- the random parts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    after_seconds: float  # since the previous kill
    service: str
    restart_delay: float  # the restarter brings it back after this long
    phase: str = "sync"  # "sync": from the start; "edits": once the edits began


def kill_plan(profile: Profile, rng: random.Random) -> list[Kill]:
    """Which service is killed when; every service at least once when there are ≥ 3 kills.

    Two thirds of the kills land in the initial sync, the last third during the edits."""
    services = list(SERVICES) if profile.service_kills >= len(SERVICES) else []
    services += [rng.choice(SERVICES) for _ in range(profile.service_kills - len(services))]
    rng.shuffle(services)
    low, high = profile.kill_interval
    in_sync = len(services) - len(services) // 3
    return [
        Kill(
            rng.uniform(low, high),
            name,
            rng.uniform(0.5, 3.0),
            "sync" if i < in_sync else "edits",
        )
        for i, name in enumerate(services)
    ]


def outage_victim(outage: int) -> str:
    """The service killed (and restarted) while Kafka is down in outage ``outage`` (0-based):
    a service starting without a broker must wait for it, not exit."""
    return ("extractor", "loader", "mapper")[outage % len(SERVICES)]


#: Names a person can type (or paste) that a careless pipeline mangles: NUL and other control
#: characters, emoji (outside the BMP), right-to-left scripts and bidi controls, combining marks.
ODD_NAMES = (
    "Kari\x00Nordmann",
    "Ola\x07\x1b[31mRed",
    "Tab\tand\nnewline",
    "Åse 😀🎉",
    "👨‍👩‍👧 Familie",
    "שלום Test",
    "مرحبا",
    "Evil\u202eemanelif",
    "Zero\u200bwidth",
    "Ñoño\u0301",
)


def odd_names(count: int, rng: random.Random) -> list[str]:
    """``count`` odd names, NUL first (the case the issue names), the rest drawn at random."""
    rest = list(ODD_NAMES[1:])
    rng.shuffle(rest)
    return [ODD_NAMES[0], *rest][:count]


def poison_payloads(count: int, rng: random.Random) -> list[bytes]:
    """Bytes no stage can decode: random garbage, the single-object marker with an unknown
    fingerprint, a truncated frame, JSON, an empty value; cycled to ``count``."""
    kinds = [
        bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))),
        b"\xc3\x01" + bytes(rng.getrandbits(8) for _ in range(8)) + b"\x02garbage",
        b"\xc3\x01\x00",
        b'{"not": "avro"}',
        b"",
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


# -- assertions ----------------------------------------------------------------------------------


@dataclass
class Expectation:
    """The seed's expected result (``seed.generate(...).expectations``), the part asserted."""

    linked_records: int
    created_contacts: int
    matched_existing_contacts: int
    review_items: int
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, expectations: Mapping[str, Any]) -> Expectation:
        return cls(
            linked_records=int(expectations["linked_records"]),
            created_contacts=int(expectations["created_contacts"]),
            matched_existing_contacts=int(expectations["matched_existing_contacts"]),
            review_items=int(expectations["review_items"]),
        )


def verdict(report: Mapping[str, Any], expected: Expectation) -> list[str]:
    """Every assertion of the chaos suite that the finished run's ``report`` fails (empty: pass).

    The report's sections are written by ``services.demo.chaos``; a missing section fails (a run
    that never got as far as measuring something has not shown it).
    """
    failures: list[str] = []
    counts = report.get("counts")
    if not isinstance(counts, Mapping):
        return ["no final counts: the run did not converge far enough to count"]
    for key, want in (
        ("linked_records", expected.linked_records),
        ("contacts_created", expected.created_contacts),
        ("contacts_matched", expected.matched_existing_contacts),
        ("in_review", expected.review_items),
    ):
        got = counts.get(key)
        if got != want:
            failures.append(f"{key}: {got}, the seed expects {want}")
    if counts.get("duplicate_contacts") != 0:
        failures.append(f"duplicate contacts: {counts.get('duplicate_contacts')}")
    if counts.get("linked_more_than_once") != 0:
        failures.append(f"records linked more than once: {counts.get('linked_more_than_once')}")
    if counts.get("unlinked_records"):
        failures.append(f"unlinked records: {counts.get('unlinked_records')}")
    edits = report.get("edits", {})
    lost = edits.get("lost", [])
    if lost:
        failures.append(f"{len(lost)} edit(s) did not arrive with their final value: {lost[:5]}")
    if not edits.get("made"):
        failures.append("no edits were made")
    stranded = report.get("stranded_partitions")
    if stranded != []:
        failures.append(f"stranded partitions (committed behind the end): {stranded}")
    divergent = report.get("verification", {}).get("divergent_links")
    if divergent != 0:
        failures.append(f"divergent links after one verification cycle: {divergent}")
    unexpected = report.get("unexpected_exits", {})
    if unexpected:
        failures.append(f"services exited without being killed: {unexpected}")
    poison = report.get("poison", {})
    if poison.get("not_dead_lettered"):
        failures.append(f"poison messages not dead-lettered: {poison['not_dead_lettered'][:5]}")
    for kind in ("forged", "oversize"):
        webhooks = report.get("webhooks", {}).get(kind, {})
        if webhooks.get("accepted"):
            failures.append(f"{kind} webhooks accepted: {webhooks['accepted']}")
    if report.get("webhooks", {}).get("forged_value_arrived"):
        failures.append("a forged webhook's value reached a record")
    return failures

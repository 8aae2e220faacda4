"""Deterministic Norwegian test data for the local PowerOffice Go and Wix simulators.

Used by the demo, the tests and the benchmarks: ``generate(records, seed)`` returns PowerOffice Go
v2 wire dicts (employees, customers, contact persons; PascalCase, without ``Id``, ``ContactId`` and
timestamps, which the simulators assign) and the Wix ``info`` dicts of contacts that already exist
in Wix before the first sync, together with ``expectations``: what a correct first sync must
produce. The same ``(records, seed)`` always gives the same data (only ``random.Random(seed)`` is
used, and nothing is iterated in hash order). This module imports nothing but the standard
library, so it can be used anywhere without dragging in project code.

What a correct sync must do (``spec/dataflows.md``), as modelled here
----------------------------------------------------------------------
- The *match key* of a record: customers and contact persons match by e-mail (trimmed,
  case-insensitive), employees by e-mail if they have one, else by phone (spaces removed,
  ``0047`` and bare 8-digit numbers become ``+47``). A record without a key (no e-mail; for an
  employee neither e-mail nor phone) is created in Wix on its own, by name.
- A key found on exactly one pre-existing Wix contact (any e-mail/phone item) links the record to
  it; on several contacts the record goes to review (no link, no create); on none, one Wix
  contact is created per distinct key and shared by all records with that key.
- The data keep that model independent of processing order and of which unmapped properties the
  engine writes into the contacts it creates: two *different* people never share an e-mail or a
  phone number, non-primary Wix items never equal any PowerOffice value, every person matched by
  phone is the only record with that number, and people who appear in several records (employee
  and private customer; contact person of two companies) use the same e-mail in all of them.
- Company customers always have an e-mail (Flow C maps no other property a company could be created
  with). Nothing is archived or inactive. Pre-existing Wix contacts have case-insensitively unique
  e-mails, so a simulator that rejects duplicate e-mails accepts them all.

Tricky cases (``SHARE_*`` constants; "exact" = a quota of the population, rounded half up)
------------------------------------------------------------------------------------------
- Names from lists rich in æ/ø/å (Åse, Bjørn, Ærlig, Sæther, Østby, Håkonsen...): about half of
  the records. Companies are named like "Østby Bygg AS", "Bergen Rør ANS", "Fjord Energi ASA"
  (exact: 80 % AS, 12 % ANS, 8 % ASA) and carry a valid (MOD11) organization number. Addresses
  are real Norwegian street names and zip codes ("Storgata 12", "0155", "Oslo").
- E-mail spellings, exact share of all PowerOffice e-mails: 6 % UPPER-CASE, 6 % with surrounding
  spaces, 8 % Mixed.Case, the rest lower-case.
- Phone spellings, exact share of mobile numbers: 25 % "+47 912 34 567", 15 % "0047 91234567",
  30 % "912 34 567", 30 % "91234567"; landlines (drawn with probability 8 % for people, 60 % for
  companies; area code of the city): 60 % "22 12 34 56", 20 % "+47 22 12 34 56", 20 % "22123456".
- Missing fields, exact: employees 3 % neither e-mail nor phone, 10 % phone only (matched by
  phone), 8 % e-mail only; private customers 10 % no e-mail, 20 % no phone; companies 10 % no
  phone; contact persons 10 % no e-mail, 25 % no phone.
- Same person as employee and private customer (same e-mail and phone, each spelled on its
  own): exact 5 % of employees. Same person as contact person of two companies: exact 4 % of the
  contact persons are such second records.
- Already in Wix (e-mail in another letter case, phone in another format): exact 30 % of the
  phone-matched employees and of the people with several records, 10 % of the other people and
  companies with a key. 30 % of them (probability) have 1-2 extra e-mail/phone items *before* the
  primary one; some have addresses, labels (``WIX_LABEL_KEYS``) or a company.
- Ambiguous: exact 2 % of the employees are phone-only and two Wix contacts without e-mail share
  their number -> one review item each.
- Wix-only contacts that match nothing: exact 4 % of ``records``.
"""

from __future__ import annotations

import functools
import gc
import random
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

# --- record mix ----------------------------------------------------------------------------------
SHARE_EMPLOYEES = 0.25
SHARE_CONTACT_PERSONS = 0.30  # the rest (45 %) are customers
SHARE_COMPANIES = 0.55  # of customers; the others are private persons (IsPerson true)

# --- missing fields ------------------------------------------------------------------------------
SHARE_EMPLOYEE_NEITHER = 0.03  # employees without e-mail and phone (created in Wix by name)
SHARE_EMPLOYEE_PHONE_ONLY = 0.10  # employees without e-mail: matched by phone
SHARE_EMPLOYEE_EMAIL_ONLY = 0.08
SHARE_PRIVATE_NO_EMAIL = 0.10  # private customers without e-mail (no key: created by name)
SHARE_PRIVATE_NO_PHONE = 0.20
SHARE_COMPANY_NO_PHONE = 0.10
SHARE_CP_NO_EMAIL = 0.10  # contact persons without e-mail (no key: created by name)
SHARE_CP_NO_PHONE = 0.25

# --- people in several records -------------------------------------------------------------------
SHARE_EMPLOYEE_ALSO_CUSTOMER = 0.05  # of employees: same person is a private customer too
SHARE_CP_OF_TWO_COMPANIES = 0.04  # of contact persons: second record of a person, other company

# --- pre-existing Wix contacts -------------------------------------------------------------------
SHARE_PREEXISTING = 0.10  # of people/companies with a key: already in Wix (e-mail in other case)
SHARE_PREEXISTING_SPECIAL = 0.30  # same, for phone-matched employees and multi-record people
SHARE_AMBIGUOUS = 0.02  # of employees: phone-only, two Wix contacts share the number -> review
SHARE_WIX_ONLY = 0.04  # of records: Wix contacts that match nothing
SHARE_WIX_MULTI_ITEM = 0.30  # of pre-existing contacts: extra items before the primary one
SHARE_WIX_ADDRESS = 0.40
SHARE_WIX_LABELS = 0.20

# --- formatting ----------------------------------------------------------------------------------
SHARE_PERSON_LANDLINE = 0.08
SHARE_COMPANY_LANDLINE = 0.60
EMAIL_STYLES: tuple[tuple[str, float], ...] = (
    ("upper", 0.06),  # "OLA.NORDMANN@GMAIL.COM"
    ("spaces", 0.06),  # " ola.nordmann@gmail.com "
    ("mixed", 0.08),  # "Ola.Nordmann@Gmail.com"
    ("plain", 0.80),
)
MOBILE_FORMATS: tuple[tuple[str, float], ...] = (
    ("+47 912 34 567", 0.25),
    ("0047 91234567", 0.15),
    ("912 34 567", 0.30),
    ("91234567", 0.30),
)
LANDLINE_FORMATS: tuple[tuple[str, float], ...] = (
    ("22 12 34 56", 0.60),
    ("+47 22 12 34 56", 0.20),
    ("22123456", 0.20),
)
WIX_LABEL_KEYS = ("custom.kunde", "custom.nyhetsbrev", "custom.vip")
MAX_WIX_ITEMS = 50  # Wix: at most 50 e-mail / phone / address items per contact

Record = dict[str, Any]

# --- vocabulary ----------------------------------------------------------------------------------
# fmt: off
_MALE = (
    "Ole", "Lars", "Bjørn", "Øystein", "Pål", "Håkon", "Kjell", "Knut", "Per", "Jan", "Arne",
    "Svein", "Terje", "Geir", "Trond", "Morten", "Rune", "Espen", "Anders", "Magnus", "Sindre",
    "Jørgen", "Eirik", "Sigurd", "Halvor", "Tor", "Ståle", "Åsmund", "Øyvind", "Jon", "Erlend",
    "Vegard", "Ørjan", "Kåre", "Aksel", "Henrik", "Mathias", "Sander", "Jonas", "Emil", "Tobias",
    "Even", "Håvard", "Bård", "Stian", "Audun", "Gaute", "Njål", "Ivar", "Torbjørn",
)
_FEMALE = (
    "Åse", "Kari", "Ingrid", "Solveig", "Marit", "Liv", "Randi", "Anne", "Hege", "Tone", "Gro",
    "Siri", "Ragnhild", "Bodil", "Sølvi", "Målfrid", "Astrid", "Guro", "Ingeborg", "Sigrid",
    "Nora", "Emma", "Ida", "Maja", "Thea", "Ingvild", "Kristin", "Heidi", "Åshild", "Bjørg",
    "Torill", "Mette", "Silje", "Marte", "Hanne", "Elin", "Jorunn", "Grete", "Sunniva", "Frøydis",
    "Dagny", "Turid", "Vigdis", "Åslaug", "Synnøve", "Ragnhild", "Oda", "Tiril", "Live", "Eli",
)
_LAST = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen",
    "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen", "Lund", "Sørensen",
    "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg", "Svendsen", "Eide", "Knutsen",
    "Martinsen", "Paulsen", "Bakken", "Kristoffersen", "Mathisen", "Lie", "Amundsen", "Nguyen",
    "Rasmussen", "Ali", "Lunde", "Solheim", "Berge", "Moe", "Nygård", "Bakke", "Sæther", "Østby",
    "Håkonsen", "Ødegård", "Bråten", "Løken", "Næss", "Strøm", "Dæhli", "Kjær", "Grønlie",
    "Fjære", "Ås", "Åsheim", "Sæbø", "Ærlig", "Øien", "Hølland", "Røed", "Brøndbo", "Tønnessen",
    "Myrvold", "Aasen", "Tangen", "Vik", "Sandvik", "Fossum", "Holm", "Engen", "Wold", "Rønning",
    "Skjærvø", "Nærland", "Sletten", "Tveit", "Håland", "Ødegaard", "Kvål", "Bøe", "Græsli",
)
_CITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (  # zip code, city, landline prefixes
    ("0155", "Oslo", ("22", "23")), ("0161", "Oslo", ("22", "23")), ("0250", "Oslo", ("22", "23")),
    ("0557", "Oslo", ("22", "23")), ("0661", "Oslo", ("22", "23")), ("5003", "Bergen", ("55",)),
    ("5014", "Bergen", ("55",)), ("7011", "Trondheim", ("72", "73")),
    ("4006", "Stavanger", ("51",)),
    ("9008", "Tromsø", ("77",)), ("4611", "Kristiansand", ("38",)), ("3015", "Drammen", ("32",)),
    ("1606", "Fredrikstad", ("69",)), ("2317", "Hamar", ("62",)), ("8006", "Bodø", ("75",)),
    ("6002", "Ålesund", ("70",)), ("3111", "Tønsberg", ("33",)), ("1337", "Sandvika", ("67",)),
    ("2000", "Lillestrøm", ("63", "64")), ("3717", "Skien", ("35",)), ("6800", "Førde", ("57",)),
    ("2609", "Lillehammer", ("61",)), ("1530", "Moss", ("69",)), ("5527", "Haugesund", ("52",)),
)
_STREETS = (
    "Storgata", "Kirkegata", "Dronningens gate", "Kongens gate", "Parkveien", "Skolegata",
    "Bygdøy allé", "Thorvald Meyers gate", "Markveien", "Strandgata", "Torggata", "Sjøgata",
    "Øvre Slottsgate", "Nedre Storgate", "Jernbanegata", "Fjellveien", "Håkon VIIs gate",
    "Bjørnstjerne Bjørnsons gate", "Løkkeveien", "Sørlandsveien", "Åsveien", "Grønland",
    "Tollbugata", "Rådhusgata", "Elvegata", "Bryggen", "Fossveien", "Bjerkelundsveien",
)
_INDUSTRIES = (
    "Bygg", "Rør", "Elektro", "Transport", "Regnskap", "Eiendom", "Maskin", "Data", "Konsult",
    "Frisør", "Bakeri", "Tannlegesenter", "Revisjon", "Entreprenør", "Snekkerverksted", "Sjømat",
    "Fisk", "Energi", "Marine", "Logistikk", "Blomster", "Interiør", "Reklame", "Trafikkskole",
    "Maling", "Graving", "Landbruk", "Catering", "Optikk", "Sport",
)
_PREFIXES = (
    "Nordic", "Fjord", "Nord", "Vest", "Øst", "Sør", "Polar", "Viking", "Norsk", "Midt-Norsk",
    "Hav", "Fjell", "Nordlys", "Kyst", "Bre",
)
_SUFFIXES: tuple[tuple[str, float], ...] = (("AS", 0.80), ("ANS", 0.12), ("ASA", 0.08))
_PRIVATE_DOMAINS = (
    "gmail.com", "online.no", "hotmail.com", "outlook.com", "icloud.com", "live.no", "yahoo.no",
)
_JOB_TITLES = (
    "Konsulent", "Rådgiver", "Selger", "Lagermedarbeider", "Prosjektleder", "Utvikler",
    "Regnskapsmedarbeider", "Daglig leder", "Sjåfør", "Lærling", "Butikkmedarbeider", "Tømrer",
)
_CP_TITLES = (
    "Daglig leder", "Økonomiansvarlig", "Innkjøper", "Regnskapsfører", "Salgssjef",
    "Prosjektleder", "Styreleder", "Kontorleder", "Innkjøpsansvarlig",
)
# fmt: on
_COMPANY_MAILBOXES = ("post", "firmapost", "kontakt", "faktura", "hei", "mail")
_SPECIAL_LETTERS = re.compile("[æøåÆØÅ]")
_TRANSLIT = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "é": "e", "ü": "u", "ö": "o", "ä": "a"})
_NOT_LOCAL_PART = re.compile(r"[^a-z0-9._-]")


@dataclass(frozen=True)
class SeedData:
    """Generated data; ``contact_persons`` pairs each contact person with its parent's index in
    ``customers``; ``expectations`` is documented in ``generate``."""

    employees: list[Record]
    customers: list[Record]
    contact_persons: list[tuple[int, Record]]
    wix_contacts: list[Record]
    expectations: dict[str, Any]


# --- normalization (the spec's matching rules, used to compute expectations) ---------------------
def normalize_email(value: str) -> str:
    """E-mail match form: trimmed, lower-case."""
    return value.strip().lower()


def normalize_phone(value: str) -> str:
    """Phone match form: whitespace removed, ``0047`` -> ``+47``, bare 8 digits get ``+47``."""
    compact = "".join(value.split())
    if compact.startswith("0047"):
        return "+47" + compact[4:]
    if len(compact) == 8 and compact.isdigit():
        return "+47" + compact
    return compact


def match_key(resource: str, record: Record) -> str | None:
    """``email:<normalized>`` or (employees without e-mail) ``phone:<normalized>``, else None."""
    email = record.get("EmailAddress")
    if isinstance(email, str) and email.strip():
        return "email:" + normalize_email(email)
    phone = record.get("PhoneNumber")
    if resource == "employees" and isinstance(phone, str) and phone.strip():
        return "phone:" + normalize_phone(phone)
    return None


def wix_keys(info: Record) -> list[str]:
    """Every match key a Wix ``info`` dict offers (all items, not only the primary ones)."""
    keys: list[str] = []
    for item in info.get("emails", {}).get("items", []):
        key = "email:" + normalize_email(item["email"])
        if key not in keys:
            keys.append(key)
    for item in info.get("phones", {}).get("items", []):
        key = "phone:" + normalize_phone(item["phone"])
        if key not in keys:
            keys.append(key)
    return keys


# --- internal model ------------------------------------------------------------------------------
@dataclass
class _Identity:
    """A real-world person or company; ``email`` is canonical (lower-case), ``phone`` 8 digits."""

    kind: str  # "person" | "company"
    first: str | None
    last: str | None
    company: str | None
    gender: str
    email: str | None
    phone: str | None
    landline: bool
    birth: str
    address: dict[str, str]
    role: str = "plain"  # "plain" | "phone_only" | "ambiguous" | "overlap" | "cp_two"
    refs: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class _Slot:
    """One PowerOffice record before rendering."""

    resource: str
    identity: _Identity
    has_email: bool
    has_phone: bool
    parent: int = -1  # contact persons: index into customers


def _half_up(value: float) -> int:
    return int(value + 0.5)


def _quota(rng: random.Random, n: int, shares: tuple[tuple[str, float], ...]) -> list[str]:
    """``n`` labels with exact counts per share (the last label takes the rest), shuffled."""
    labels: list[str] = []
    for label, share in shares[:-1]:
        labels.extend([label] * min(_half_up(n * share), n - len(labels)))
    labels.extend([shares[-1][0]] * (n - len(labels)))
    rng.shuffle(labels)
    return labels


@functools.lru_cache(maxsize=4096)
def _ascii(text: str) -> str:
    """``Bjørn Sæther`` -> ``bjornsaether`` (for e-mail local parts and domains)."""
    return _NOT_LOCAL_PART.sub("", text.lower().translate(_TRANSLIT))


def mixed_case(email: str) -> str:
    """``ola.nordmann@gmail.com`` -> ``Ola.Nordmann@Gmail.com``."""
    local, _, domain = email.partition("@")
    return ".".join(p[:1].upper() + p[1:] for p in local.split(".")) + "@" + domain.capitalize()


def _format_phone(digits: str, fmt: str) -> str:
    d = digits
    if fmt == "+47 912 34 567":
        return f"+47 {d[:3]} {d[3:5]} {d[5:]}"
    if fmt == "0047 91234567":
        return "0047 " + d
    if fmt == "912 34 567":
        return f"{d[:3]} {d[3:5]} {d[5:]}"
    if fmt == "22 12 34 56":
        return f"{d[:2]} {d[2:4]} {d[4:6]} {d[6:]}"
    if fmt == "+47 22 12 34 56":
        return f"+47 {d[:2]} {d[2:4]} {d[4:6]} {d[6:]}"
    return d  # "91234567" / "22123456"


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.emails: set[str] = set()
        self.phones: set[str] = set()
        self.orgnrs: set[str] = set()
        self.domains: set[str] = set()

    # --- unique values ---------------------------------------------------------------------------
    def email(self, local: str, domain: str) -> str:
        candidate = f"{local}@{domain}"
        attempt = 0
        while candidate in self.emails:
            attempt += 1
            number = self.rng.randrange(2, 100) if attempt < 4 else len(self.emails) + attempt
            candidate = f"{local}{number}@{domain}"
        self.emails.add(candidate)
        return candidate

    def phone(self, landline: bool, prefixes: tuple[str, ...]) -> str:
        rng = self.rng
        while True:
            if landline:
                digits = rng.choice(prefixes) + f"{rng.randrange(1_000_000):06d}"
            else:
                digits = rng.choice("49") + f"{rng.randrange(10_000_000):07d}"
            if digits not in self.phones:
                self.phones.add(digits)
                return digits

    def orgnr(self) -> str:
        weights = (3, 2, 7, 6, 5, 4, 3, 2)
        while True:
            body = [self.rng.choice((8, 9))] + [self.rng.randrange(10) for _ in range(7)]
            check = 11 - sum(w * d for w, d in zip(weights, body, strict=True)) % 11
            if check == 10:
                continue
            value = "".join(map(str, body)) + str(check % 11)
            if value not in self.orgnrs:
                self.orgnrs.add(value)
                return value

    def domain(self, slug: str, city: str) -> str:
        candidate = slug + ".no"
        number = 1
        while candidate in self.domains:
            number += 1
            candidate = f"{slug}-{_ascii(city)}.no" if number == 2 else f"{slug}{number}.no"
        self.domains.add(candidate)
        return candidate

    # --- identities ------------------------------------------------------------------------------
    def address(self) -> tuple[dict[str, str], tuple[str, ...]]:
        rng = self.rng
        zip_code, city, prefixes = rng.choice(_CITIES)
        line1 = f"{rng.choice(_STREETS)} {rng.randrange(1, 121)}{rng.choice(('',) * 6 + ('B',))}"
        address = {"AddressLine1": line1, "ZipCode": zip_code, "City": city, "CountryCode": "NO"}
        roll = rng.random()
        if roll < 0.15:
            address["AddressLine2"] = f"H0{rng.randrange(1, 6)}0{rng.randrange(1, 5)}"
        elif roll < 0.20:
            address["AddressLine2"] = f"Postboks {rng.randrange(1, 9000)}"
        return address, prefixes

    def birth(self, first_year: int = 1958, last_year: int = 2005) -> str:
        start = date(first_year, 1, 1)
        days = self.rng.randrange((last_year - first_year) * 365)
        return (start + timedelta(days=days)).isoformat()

    def person(self, domain: str | None = None, landline: bool = False) -> _Identity:
        rng = self.rng
        gender = rng.choice(("Male", "Female"))
        first = rng.choice(_MALE if gender == "Male" else _FEMALE)
        last = rng.choice(_LAST)
        f, lname = _ascii(first), _ascii(last)
        if domain is None:
            domain = rng.choice(_PRIVATE_DOMAINS)
            local = rng.choice(
                (
                    f"{f}.{lname}",
                    f"{f}{lname}",
                    f"{f}.{lname}",
                    f"{f[0]}.{lname}",
                    f"{f}_{lname}",
                    f"{f}{lname}{rng.randrange(50, 100)}",
                )
            )
        else:
            local = rng.choice((f"{f}.{lname}", f"{f}.{lname}", f"{f}", f"{f[0]}{lname}"))
        address, prefixes = self.address()
        return _Identity(
            kind="person",
            first=first,
            last=last,
            company=None,
            gender=gender,
            email=self.email(local, domain),
            phone=self.phone(landline, prefixes),
            landline=landline,
            birth=self.birth(),
            address=address,
        )

    def company(self, suffix: str) -> _Identity:
        rng = self.rng
        industry = rng.choice(_INDUSTRIES)
        address, prefixes = self.address()
        pattern = rng.randrange(5)
        if pattern == 0:
            stem = f"{rng.choice(_LAST)} {industry}"
        elif pattern == 1:
            stem = f"{address['City']} {industry}"
        elif pattern == 2:
            stem = f"{rng.choice(_LAST)} & Sønn"
        elif pattern == 3:
            stem = f"{rng.choice(_LAST)} & {rng.choice(_LAST)}"
        else:
            stem = f"{rng.choice(_PREFIXES)} {industry}"
        domain = self.domain(_ascii(stem.replace("&", "").replace(" ", "")), address["City"])
        landline = rng.random() < SHARE_COMPANY_LANDLINE
        return _Identity(
            kind="company",
            first=None,
            last=None,
            company=f"{stem} {suffix}",
            gender="",
            email=self.email(rng.choice(_COMPANY_MAILBOXES), domain),
            phone=self.phone(landline, prefixes),
            landline=landline,
            birth="",
            address=address,
        )


def _pick(rng: random.Random, population: list[int], count: int) -> list[int]:
    """``count`` members of ``population`` (at most all of them), in population order."""
    chosen = set(rng.sample(range(len(population)), min(count, len(population))))
    return [population[i] for i in range(len(population)) if i in chosen]


def generate(records: int, seed: int = 42) -> SeedData:
    """Generate ``records`` PowerOffice records (25 % employees, 45 % customers, 30 % contact
    persons) plus pre-existing Wix contacts, deterministically for ``seed``.

    ``expectations`` (JSON-serializable) holds:

    - ``records``, ``seed``; ``records_per_flow``: ``{"employees", "customers",
      "contact_persons"}`` counts; ``customers_company`` / ``customers_person``.
    - ``wix_contacts_before_sync``: ``len(wix_contacts)``.
    - ``matched_existing_records``: records that must link to a pre-existing Wix contact;
      ``matched_existing_contacts``: how many distinct pre-existing contacts get linked.
    - ``created_contacts``: Wix contacts the sync must create (one per distinct unmatched key plus
      one per record without a key); ``wix_contacts_after_sync`` = before + created.
    - ``review_items``: records with several candidate Wix contacts (no link, no create);
      ``review``: ``[{"resource", "index", "key", "wix_indices"}]`` for each.
    - ``linked_records``: records - review_items.
    - ``shared_contacts``: Wix contacts linked to 2+ records; ``records_in_shared_contacts``.
    - ``contact_groups``: every Wix contact that ends up linked, as ``{"wix_index": index into
      wix_contacts or None when created, "records": [[resource, index], ...]}``.
    - ``untouched_wix_contacts``: pre-existing contacts linked to nothing (Wix-only + ambiguous);
      ``wix_only_contacts``: pre-existing contacts whose keys match no record at all;
      ``ambiguous_wix_contacts``: pre-existing contacts that are candidates of a review item.
    - ``records_without_email``, ``records_without_phone``, ``employees_without_email_and_phone``,
      ``records_without_key`` (created by name), ``employees_matched_by_phone``.
    - ``emails_upper_case``, ``emails_with_spaces``, ``emails_mixed_case``; ``phone_formats``:
      ``{format example: count}`` over all PowerOffice phones; ``landline_phones``.
    - ``records_with_aeoeaa``: records whose name contains æ, ø or å (any case).
    - ``employee_and_customer``: people who are an employee and a private customer;
      ``contact_person_of_two_companies``: people who are a contact person of two companies.
    - ``company_suffixes``: ``{"AS", "ANS", "ASA"}`` counts.
    - ``wix_primary_not_first``: pre-existing contacts whose primary e-mail or phone item is not
      the first item; ``wix_label_keys``: label keys used (create them before seeding Wix).
    """
    if records < 0:
        raise ValueError("records must be >= 0")
    # Hundreds of thousands of small dicts and no reference cycles: the cyclic garbage collector
    # would only rescan them over and over (it doubles the run time at 50,000 records).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(records, seed)
    finally:
        if was_enabled:
            gc.enable()


def _generate(records: int, seed: int) -> SeedData:
    gen = _Generator(seed)
    rng = gen.rng

    n_emp = _half_up(records * SHARE_EMPLOYEES)
    n_cp = _half_up(records * SHARE_CONTACT_PERSONS)
    n_cust = records - n_emp - n_cp
    if n_cust == 0 and n_cp > 0:  # contact persons need a company to belong to
        n_cust, n_cp = 1, n_cp - 1
    n_company = max(_half_up(n_cust * SHARE_COMPANIES), 1 if n_cp else 0)
    n_private = n_cust - n_company

    # --- employees -------------------------------------------------------------------------------
    emp_kind = _quota(
        rng,
        n_emp,
        (
            ("neither", SHARE_EMPLOYEE_NEITHER),
            ("phone_only", SHARE_EMPLOYEE_PHONE_ONLY),
            ("email_only", SHARE_EMPLOYEE_EMAIL_ONLY),
            ("both", 1.0),
        ),
    )
    employees: list[_Slot] = []
    for kind in emp_kind:
        who = gen.person(landline=rng.random() < SHARE_PERSON_LANDLINE)
        if kind == "phone_only":
            who.role = "phone_only"
        employees.append(
            _Slot("employees", who, kind in ("both", "email_only"), kind in ("both", "phone_only"))
        )
    phone_only = [i for i, s in enumerate(employees) if s.identity.role == "phone_only"]
    for i in _pick(rng, phone_only, _half_up(n_emp * SHARE_AMBIGUOUS)):
        employees[i].identity.role = "ambiguous"
        if employees[i].identity.landline:  # the duplicate Wix contacts hold a mobile number
            employees[i].identity.landline = False
            employees[i].identity.phone = gen.phone(False, ())
    both = [i for i, s in enumerate(employees) if s.has_email and s.has_phone]
    n_overlap = min(_half_up(n_emp * SHARE_EMPLOYEE_ALSO_CUSTOMER), len(both), n_private)
    overlap = _pick(rng, both, n_overlap)
    for i in overlap:
        employees[i].identity.role = "overlap"

    # --- customers -------------------------------------------------------------------------------
    kinds = ["company"] * n_company + ["private"] * n_private
    rng.shuffle(kinds)
    private_positions = [i for i, k in enumerate(kinds) if k == "private"]
    overlap_positions = set(rng.sample(private_positions, len(overlap)))
    overlap_iter = iter(overlap)
    private_no_email = iter(
        _quota(rng, n_private - len(overlap), (("no", SHARE_PRIVATE_NO_EMAIL), ("yes", 1.0)))
    )
    private_no_phone = iter(
        _quota(rng, n_private - len(overlap), (("no", SHARE_PRIVATE_NO_PHONE), ("yes", 1.0)))
    )
    company_no_phone = iter(_quota(rng, n_company, (("no", SHARE_COMPANY_NO_PHONE), ("yes", 1.0))))
    suffixes = iter(_quota(rng, n_company, _SUFFIXES))
    customers: list[_Slot] = []
    for position, kind in enumerate(kinds):
        if kind == "company":
            company = gen.company(next(suffixes))
            customers.append(_Slot("customers", company, True, next(company_no_phone) == "yes"))
        elif position in overlap_positions:
            employee = employees[next(overlap_iter)]
            customers.append(_Slot("customers", employee.identity, True, True))
        else:
            who = gen.person(landline=rng.random() < SHARE_PERSON_LANDLINE)
            customers.append(
                _Slot(
                    "customers",
                    who,
                    next(private_no_email) == "yes",
                    next(private_no_phone) == "yes",
                )
            )

    # --- contact persons -------------------------------------------------------------------------
    companies = [i for i, k in enumerate(kinds) if k == "company"]
    n_cp_two = _half_up(n_cp * SHARE_CP_OF_TWO_COMPANIES) if len(companies) > 1 else 0
    n_cp_first = n_cp - n_cp_two
    cp_no_email = _quota(rng, n_cp_first, (("no", SHARE_CP_NO_EMAIL), ("yes", 1.0)))
    cp_no_phone = _quota(rng, n_cp_first, (("no", SHARE_CP_NO_PHONE), ("yes", 1.0)))
    contact_slots: list[_Slot] = []
    for j in range(n_cp_first):
        parent = rng.choice(companies)
        parent_id = customers[parent].identity
        assert parent_id.email is not None
        who = gen.person(
            domain=parent_id.email.partition("@")[2], landline=rng.random() < SHARE_PERSON_LANDLINE
        )
        contact_slots.append(
            _Slot("contact_persons", who, cp_no_email[j] == "yes", cp_no_phone[j] == "yes", parent)
        )
    with_email = [j for j, s in enumerate(contact_slots) if s.has_email]
    n_cp_two = min(n_cp_two, len(with_email))
    for j in rng.sample(with_email, n_cp_two):
        first = contact_slots[j]
        first.identity.role = "cp_two"
        parent = first.parent
        while parent == first.parent:
            parent = rng.choice(companies)
        second = _Slot("contact_persons", first.identity, True, first.has_phone, parent)
        contact_slots.append(second)
    while len(contact_slots) < n_cp:
        parent = rng.choice(companies)
        contact_slots.append(_Slot("contact_persons", gen.person(), False, True, parent))
    order = sorted(range(len(contact_slots)), key=lambda j: contact_slots[j].parent)
    contact_slots = [contact_slots[j] for j in order]

    # --- render PowerOffice records --------------------------------------------------------------
    slots = employees + customers + contact_slots
    for resource, items in (
        ("employees", employees),
        ("customers", customers),
        ("contact_persons", contact_slots),
    ):
        for index, slot in enumerate(items):
            slot.identity.refs.append((resource, index))
    email_styles = iter(_quota(rng, sum(s.has_email for s in slots), EMAIL_STYLES))
    n_phone = sum(s.has_phone for s in slots)
    n_land = sum(s.has_phone and s.identity.landline for s in slots)
    mobile_fmt = iter(_quota(rng, n_phone - n_land, MOBILE_FORMATS))
    land_fmt = iter(_quota(rng, n_land, LANDLINE_FORMATS))
    style_counts = {label: 0 for label, _ in EMAIL_STYLES}
    format_counts = {label: 0 for label, _ in MOBILE_FORMATS + LANDLINE_FORMATS}
    rendered: list[tuple[str | None, str | None]] = []
    for slot in slots:
        email = phone = None
        who = slot.identity
        if slot.has_email and who.email is not None:
            style = next(email_styles)
            style_counts[style] += 1
            email = _render_email(rng, who.email, style)
        if slot.has_phone and who.phone is not None:
            fmt = next(land_fmt) if who.landline else next(mobile_fmt)
            format_counts[fmt] += 1
            phone = _format_phone(who.phone, fmt)
        rendered.append((email, phone))

    emp_records = [_employee_dto(gen, i, s, *rendered[i]) for i, s in enumerate(employees)]
    offset = len(employees)
    cust_records = [
        _customer_dto(gen, i, s, *rendered[offset + i]) for i, s in enumerate(customers)
    ]
    offset += len(customers)
    is_default: set[int] = set()
    cp_records: list[tuple[int, Record]] = []
    for j, slot in enumerate(contact_slots):
        who = slot.identity
        email, phone = rendered[offset + j]
        cp_records.append(
            (
                slot.parent,
                {
                    "FirstName": who.first,
                    "LastName": who.last,
                    "EmailAddress": email,
                    "PhoneNumber": phone,
                    "Title": rng.choice(_CP_TITLES),
                    "IsActive": True,
                    "IsDefault": slot.parent not in is_default,
                },
            )
        )
        is_default.add(slot.parent)

    # --- Wix contacts that exist before the first sync -------------------------------------------
    wix = _WixBuilder(gen)
    identities: list[_Identity] = []
    keyed: list[int] = []  # identities with a match key (review cases excluded)
    seen: set[int] = set()
    for slot in slots:
        who = slot.identity
        if id(who) not in seen:
            seen.add(id(who))
            identities.append(who)
            has_key = slot.has_email or (slot.resource == "employees" and slot.has_phone)
            if has_key and who.role != "ambiguous":
                keyed.append(len(identities) - 1)
    special = [i for i in keyed if identities[i].role in ("phone_only", "overlap", "cp_two")]
    plain = [i for i in keyed if identities[i].role == "plain"]
    pre = _pick(rng, special, _half_up(len(special) * SHARE_PREEXISTING_SPECIAL)) + _pick(
        rng, plain, _half_up(len(plain) * SHARE_PREEXISTING)
    )
    rng.shuffle(pre)
    for i in pre:
        wix.matching(identities[i], emp_records, cust_records, cp_records)
    for who in identities:
        if who.role == "ambiguous":
            wix.ambiguous(who)
    for _ in range(_half_up(records * SHARE_WIX_ONLY)):
        wix.wix_only()
    wix_contacts = wix.shuffled()

    expectations = _expectations(emp_records, cust_records, cp_records, wix_contacts)
    expectations.update(
        records=records,
        seed=seed,
        customers_company=n_company,
        customers_person=n_private,
        emails_upper_case=style_counts["upper"],
        emails_with_spaces=style_counts["spaces"],
        emails_mixed_case=style_counts["mixed"],
        phone_formats=format_counts,
        landline_phones=n_land,
        employee_and_customer=len(overlap),
        contact_person_of_two_companies=n_cp_two,
        company_suffixes={
            suffix: sum(
                1
                for s in customers
                if s.identity.kind == "company"
                and (s.identity.company or "").endswith(" " + suffix)
            )
            for suffix, _ in _SUFFIXES
        },
        wix_primary_not_first=wix.primary_not_first,
        wix_label_keys=sorted(wix.labels),
    )
    return SeedData(emp_records, cust_records, cp_records, wix_contacts, expectations)


def _render_email(rng: random.Random, email: str, style: str) -> str:
    if style == "upper":
        return email.upper()
    if style == "mixed":
        return mixed_case(email)
    if style == "spaces":
        return rng.choice((" {} ", "{} ", " {}", "  {}  ")).format(email)
    return email


def _employee_dto(
    gen: _Generator, index: int, slot: _Slot, email: str | None, phone: str | None
) -> Record:
    who = slot.identity
    hired = date(2005, 1, 1) + timedelta(days=gen.rng.randrange(20 * 365))
    return {
        "Number": index + 1,
        "FirstName": who.first,
        "LastName": who.last,
        "EmailAddress": email,
        "PhoneNumber": phone,
        "DateOfBirth": who.birth,
        "HiredDate": hired.isoformat(),
        "JobTitle": gen.rng.choice(_JOB_TITLES),
        "Gender": who.gender,
        "IsArchived": False,
        "MailAddress": dict(who.address),
    }


def _customer_dto(
    gen: _Generator, index: int, slot: _Slot, email: str | None, phone: str | None
) -> Record:
    who = slot.identity
    since = date(2008, 1, 1) + timedelta(days=gen.rng.randrange(17 * 365))
    company = who.kind == "company"
    website = None
    if company and email is not None:
        website = "www." + email.strip().lower().partition("@")[2]
    return {
        "Number": 10000 + index,
        "IsPerson": not company,
        "Name": who.company if company else None,
        "LegalName": who.company if company else None,
        "FirstName": None if company else who.first,
        "LastName": None if company else who.last,
        "OrganizationNumber": gen.orgnr() if company else None,
        "EmailAddress": email,
        "PhoneNumber": phone,
        "WebsiteUrl": website,
        "DateOfBirth": None if company else who.birth,
        "IsArchived": False,
        "CurrencyCode": "NOK",
        "CustomerSince": since.isoformat(),
        "MailAddress": dict(who.address),
    }


class _WixBuilder:
    """Builds Wix ``info`` dicts; extra (non-primary) items always use fresh e-mails/numbers."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.contacts: list[Record] = []
        self.primary_not_first = 0
        self.labels: set[str] = set()

    def _extras(self, info: Record, who: _Identity) -> None:
        rng = self.gen.rng
        if rng.random() < SHARE_WIX_ADDRESS:
            a = who.address
            address = {
                "addressLine": a["AddressLine1"],
                "city": a["City"],
                "postalCode": a["ZipCode"],
                "country": "NO",
            }
            tag = "WORK" if who.kind == "company" else "HOME"
            info["addresses"] = {"items": [{"tag": tag, "address": address}]}
        if rng.random() < SHARE_WIX_LABELS:
            keys = sorted(rng.sample(WIX_LABEL_KEYS, rng.randrange(1, 3)))
            self.labels.update(keys)
            info["labelKeys"] = {"items": keys}

    def _items(self, kind: str, primary: Record, multi: bool, who: _Identity) -> list[Record]:
        """Item list whose primary item is ``primary``; with ``multi`` 1-2 fresh extra items come
        first (so the primary is not the first item). Extras never equal a PowerOffice value."""
        rng = self.gen.rng
        items: list[Record] = []
        for _ in range(rng.randrange(1, 3) if multi else 0):
            tag = rng.choice(("HOME", "WORK"))
            if kind == "email":
                if who.kind == "company" and who.email is not None:
                    local, domain = rng.choice(_COMPANY_MAILBOXES), who.email.partition("@")[2]
                else:
                    local = _ascii(f"{who.first}.{who.last}")
                    domain = rng.choice(_PRIVATE_DOMAINS)
                items.append({"tag": tag, "email": self.gen.email(local, domain), "primary": False})
            else:
                phone = _format_phone(self.gen.phone(False, ()), rng.choice(MOBILE_FORMATS)[0])
                items.append({"tag": tag, "countryCode": "NO", "phone": phone, "primary": False})
        items.append(dict(primary, primary=True))
        return items[:MAX_WIX_ITEMS]

    def _add(self, info: Record) -> None:
        for kind in ("emails", "phones"):
            items = info.get(kind, {}).get("items", [])
            if items and not items[0].get("primary"):
                self.primary_not_first += 1
                break
        self.contacts.append(info)

    def matching(
        self, who: _Identity, emp: list[Record], cust: list[Record], cps: list[tuple[int, Record]]
    ) -> None:
        """A contact matching ``who``: its e-mail in another case than in PowerOffice, its phone in
        another format."""
        rng = self.gen.rng
        po = [
            emp[i] if res == "employees" else cust[i] if res == "customers" else cps[i][1]
            for res, i in who.refs
        ]
        po_emails = {r["EmailAddress"] for r in po if r["EmailAddress"]}
        po_phones = {r["PhoneNumber"] for r in po if r["PhoneNumber"]}
        multi = rng.random() < SHARE_WIX_MULTI_ITEM
        info: Record = {}
        if who.kind == "person":
            info["name"] = {"first": who.first, "last": who.last}
        else:
            info["company"] = who.company
        email: str | None = None
        if who.role == "phone_only":
            if rng.random() < 0.5:  # Wix knows a private e-mail that PowerOffice does not have
                email = self.gen.email(_ascii(f"{who.first}.{who.last}"), "privat.no")
        elif who.email is not None:
            email = next(
                (
                    v
                    for v in (mixed_case(who.email), who.email.upper(), who.email)
                    if v not in po_emails
                ),
                who.email,
            )
        if email is not None:
            primary = {"tag": "MAIN", "email": email}
            info["emails"] = {"items": self._items("email", primary, multi, who)}
        if who.phone is not None and (who.role == "phone_only" or rng.random() < 0.7):
            formats = [
                f
                for f, _ in (LANDLINE_FORMATS if who.landline else MOBILE_FORMATS)
                if _format_phone(who.phone, f) not in po_phones
            ]
            fmt = rng.choice(formats) if formats else "91234567"
            tag = "WORK" if who.kind == "company" else "HOME" if who.landline else "MOBILE"
            primary = {"tag": tag, "countryCode": "NO", "phone": _format_phone(who.phone, fmt)}
            info["phones"] = {"items": self._items("phone", primary, multi, who)}
        self._extras(info, who)
        self._add(info)

    def ambiguous(self, who: _Identity) -> None:
        """Two contacts without e-mail sharing ``who``'s phone (e.g. an old duplicate import)."""
        assert who.phone is not None
        fmts = self.gen.rng.sample([f for f, _ in MOBILE_FORMATS], 2)
        for n, fmt in enumerate(fmts):
            name = {"first": who.first, "last": who.last} if n == 0 else {"first": who.first}
            phone = {
                "tag": "MOBILE",
                "countryCode": "NO",
                "phone": _format_phone(who.phone, fmt),
                "primary": True,
            }
            self._add({"name": name, "phones": {"items": [phone]}})

    def wix_only(self) -> None:
        """A contact that matches no PowerOffice record (fresh e-mail and phone)."""
        rng = self.gen.rng
        who = self.gen.person(landline=rng.random() < SHARE_PERSON_LANDLINE)
        multi = rng.random() < SHARE_WIX_MULTI_ITEM
        has_email = rng.random() < 0.85
        has_phone = not has_email or rng.random() < 0.6
        info: Record = {"name": {"first": who.first, "last": who.last}}
        if has_email and who.email is not None:
            primary = {"tag": "MAIN", "email": rng.choice((who.email, mixed_case(who.email)))}
            info["emails"] = {"items": self._items("email", primary, multi, who)}
        if has_phone and who.phone is not None:
            fmt = rng.choice([f for f, _ in MOBILE_FORMATS])
            primary = {"tag": "MOBILE", "countryCode": "NO", "phone": _format_phone(who.phone, fmt)}
            info["phones"] = {"items": self._items("phone", primary, multi, who)}
        if rng.random() < 0.15:
            info["company"] = f"{rng.choice(_PREFIXES)} {rng.choice(_INDUSTRIES)} AS"
        self._extras(info, who)
        self._add(info)

    def shuffled(self) -> list[Record]:
        self.gen.rng.shuffle(self.contacts)
        return self.contacts


def recount(data: SeedData) -> SeedData:
    """``data`` with its matching expectations computed again, after its e-mails or phones were
    changed (``tenantseed.share_people``); the generation figures (styles, formats, counts of
    kinds) are kept: a change must keep each value's style and kind."""
    expectations = {
        **data.expectations,
        **_expectations(data.employees, data.customers, data.contact_persons, data.wix_contacts),
    }
    return SeedData(
        data.employees, data.customers, data.contact_persons, data.wix_contacts, expectations
    )


def _expectations(
    emp: list[Record], cust: list[Record], cps: list[tuple[int, Record]], wix_contacts: list[Record]
) -> dict[str, Any]:
    """Apply the spec's matching rules to the generated data."""
    index: dict[str, list[int]] = {}
    for w, info in enumerate(wix_contacts):
        for wix_key in wix_keys(info):
            index.setdefault(wix_key, []).append(w)
    flows: list[tuple[str, list[Record]]] = [
        ("employees", emp),
        ("customers", cust),
        ("contact_persons", [r for _, r in cps]),
    ]
    groups: dict[str, dict[str, Any]] = {}  # target -> {"wix_index", "records"}
    review: list[dict[str, Any]] = []
    counts = {
        "records_without_email": 0,
        "records_without_phone": 0,
        "employees_without_email_and_phone": 0,
        "records_without_key": 0,
        "employees_matched_by_phone": 0,
        "records_with_aeoeaa": 0,
    }
    wix_with_candidates: set[int] = set()
    for resource, items in flows:
        for i, rec in enumerate(items):
            no_email = not (rec.get("EmailAddress") or "").strip()
            no_phone = not (rec.get("PhoneNumber") or "").strip()
            counts["records_without_email"] += no_email
            counts["records_without_phone"] += no_phone
            if resource == "employees":
                counts["employees_without_email_and_phone"] += no_email and no_phone
            names = f"{rec.get('FirstName')} {rec.get('LastName')} {rec.get('Name')}"
            counts["records_with_aeoeaa"] += _SPECIAL_LETTERS.search(names) is not None
            key = match_key(resource, rec)
            wix_index: int | None = None
            if key is None:
                counts["records_without_key"] += 1
                target = f"new:{resource}:{i}"
            else:
                if key.startswith("phone:"):
                    counts["employees_matched_by_phone"] += 1
                candidates = index.get(key, [])
                wix_with_candidates.update(candidates)
                if len(candidates) > 1:
                    review.append(
                        {
                            "resource": resource,
                            "index": i,
                            "key": key,
                            "wix_indices": list(candidates),
                        }
                    )
                    continue
                if candidates:
                    target, wix_index = f"wix:{candidates[0]}", candidates[0]
                else:
                    target = f"new:{key}"
            group = groups.setdefault(target, {"wix_index": wix_index, "records": []})
            group["records"].append([resource, i])
    linked_wix = {g["wix_index"] for g in groups.values() if g["wix_index"] is not None}
    ambiguous_wix = {w for r in review for w in r["wix_indices"]}
    n_records = len(emp) + len(cust) + len(cps)
    created = sum(1 for g in groups.values() if g["wix_index"] is None)
    shared = [g for g in groups.values() if len(g["records"]) > 1]
    return {
        "records_per_flow": {
            "employees": len(emp),
            "customers": len(cust),
            "contact_persons": len(cps),
        },
        "wix_contacts_before_sync": len(wix_contacts),
        "matched_existing_records": sum(
            len(g["records"]) for g in groups.values() if g["wix_index"] is not None
        ),
        "matched_existing_contacts": len(linked_wix),
        "created_contacts": created,
        "wix_contacts_after_sync": len(wix_contacts) + created,
        "review_items": len(review),
        "review": review,
        "linked_records": n_records - len(review),
        "shared_contacts": len(shared),
        "records_in_shared_contacts": sum(len(g["records"]) for g in shared),
        "contact_groups": list(groups.values()),
        "untouched_wix_contacts": len(wix_contacts) - len(linked_wix),
        "wix_only_contacts": len(wix_contacts) - len(wix_with_candidates),
        "ambiguous_wix_contacts": len(ambiguous_wix),
        **counts,
    }

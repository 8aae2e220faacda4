"""Deterministic test data for many tenants: distinct data per tenant, optionally shared people.

For the multi-tenant simulators (``poweroffice/simtenants.py``, ``wix/simsites.py``), the
benchmarks and the tests: ``generate_tenant(tenant)`` is ``seed.generate`` with a seed and a
record count (50-200 by default) derived from the tenant id, so every process derives the same
data for the same tenant and two tenants get different data. ``share_people(source, target,
count)`` gives ``count`` people of ``target`` the e-mail address and mobile number of people of
``source`` — the "two tenants sharing e-mails must never cross-link" case (a person who is a
customer of two companies using Tether).

Imports: the standard library and ``seed`` only.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from services.connectors.seed import (
    Record,
    SeedData,
    generate,
    mixed_case,
    normalize_email,
    normalize_phone,
    recount,
)

DEFAULT_MIN_RECORDS = 50
DEFAULT_MAX_RECORDS = 200


def tenant_seed(tenant: str, base_seed: int = 42) -> int:
    """A stable seed for ``tenant`` (CRC-32: the same in every process, unlike ``hash``)."""
    return zlib.crc32(f"{base_seed}:{tenant}".encode())


def tenant_record_count(
    tenant: str,
    *,
    minimum: int = DEFAULT_MIN_RECORDS,
    maximum: int = DEFAULT_MAX_RECORDS,
    base_seed: int = 42,
) -> int:
    """How many PowerOffice records ``tenant`` gets: ``minimum``..``maximum``, by its seed."""
    if not 0 <= minimum <= maximum:
        raise ValueError("need 0 <= minimum <= maximum")
    return random.Random(tenant_seed(tenant, base_seed)).randint(minimum, maximum)


def generate_tenant(
    tenant: str,
    *,
    records: int | None = None,
    minimum: int = DEFAULT_MIN_RECORDS,
    maximum: int = DEFAULT_MAX_RECORDS,
    base_seed: int = 42,
) -> SeedData:
    """``tenant``'s data: ``records`` records (default: ``tenant_record_count``)."""
    count = (
        tenant_record_count(tenant, minimum=minimum, maximum=maximum, base_seed=base_seed)
        if records is None
        else records
    )
    return generate(count, tenant_seed(tenant, base_seed))


@dataclass(frozen=True)
class SharedPeople:
    """What ``share_people`` changed: ``target``'s data and the shared values (match form:
    e-mails lower-case, phones ``+47`` and 8 digits)."""

    data: SeedData
    emails: list[str]
    phones: list[str]


def share_people(source: SeedData, target: SeedData, count: int, *, seed: int = 0) -> SharedPeople:
    """``target`` where ``count`` people (employees, private customers, contact persons with an
    e-mail) now have the e-mail — and, when both have a mobile number, the number — of a person
    of ``source``. Every spelling of a changed value in ``target`` (PowerOffice records and
    pre-existing Wix contacts) changes, each keeping its style, so ``target``'s own structure
    (who matches whom inside the tenant) is unchanged; its expectations are recounted."""
    rng = random.Random(f"share:{seed}:{count}")
    target_emails, target_phones = _values(target)
    theirs = _people(source)
    ours = _people(target)
    free = [p for p in theirs if p[0] not in target_emails and p[1] not in target_phones]
    pairs = list(
        zip(rng.sample(ours, min(count, len(ours))), rng.sample(free, len(free)), strict=False)
    )
    if len(pairs) < count:
        raise ValueError(f"only {len(pairs)} people can be shared between these tenants")
    emails = {old[0]: new[0] for old, new in pairs}
    phones = {
        old[1]: new[1]
        for old, new in pairs
        if old[1] is not None and new[1] is not None and _mobile(old[1]) and _mobile(new[1])
    }
    data = SeedData(
        [_renamed(r, emails, phones) for r in target.employees],
        [_renamed(r, emails, phones) for r in target.customers],
        [(parent, _renamed(r, emails, phones)) for parent, r in target.contact_persons],
        [_renamed_wix(info, emails, phones) for info in target.wix_contacts],
        target.expectations,
    )
    return SharedPeople(recount(data), sorted(emails.values()), sorted(phones.values()))


def _people(data: SeedData) -> list[tuple[str, str | None]]:
    """Distinct (e-mail, phone) of the people (not companies) with an e-mail, in record order."""
    seen: dict[str, str | None] = {}
    records = [*data.employees, *data.customers, *(r for _, r in data.contact_persons)]
    for record in records:
        email = record.get("EmailAddress")
        if record.get("IsPerson") is False or not isinstance(email, str) or not email.strip():
            continue
        phone = record.get("PhoneNumber")
        key = normalize_email(email)
        if key not in seen:
            seen[key] = normalize_phone(phone) if isinstance(phone, str) and phone else None
    return list(seen.items())


def _values(data: SeedData) -> tuple[set[str], set[str]]:
    """Every e-mail and phone (match form) anywhere in ``data``, Wix items included."""
    emails: set[str] = set()
    phones: set[str] = set()
    records = [*data.employees, *data.customers, *(r for _, r in data.contact_persons)]
    for record in records:
        if record.get("EmailAddress"):
            emails.add(normalize_email(record["EmailAddress"]))
        if record.get("PhoneNumber"):
            phones.add(normalize_phone(record["PhoneNumber"]))
    for info in data.wix_contacts:
        emails.update(normalize_email(i["email"]) for i in info.get("emails", {}).get("items", []))
        phones.update(normalize_phone(i["phone"]) for i in info.get("phones", {}).get("items", []))
    return emails, phones


def _mobile(phone: str) -> bool:
    """A Norwegian mobile number (match form): landlines are not exchanged for mobiles, so the
    target's phone-format and landline figures stay true."""
    return phone.startswith(("+474", "+479"))


def _restyled_email(spelled: str, new: str) -> str:
    """``new`` (lower-case) spelled like ``spelled``: same surrounding spaces and letter case."""
    core = spelled.strip()
    if core == core.upper() and core != core.lower():
        styled = new.upper()
    elif core == mixed_case(core.lower()) and core != core.lower():
        styled = mixed_case(new)
    else:
        styled = new
    return spelled.replace(core, styled)


def _restyled_phone(spelled: str, new: str) -> str:
    """``spelled`` with its last 8 digits replaced by ``new``'s (``+47`` and 8 digits)."""
    chars = list(spelled)
    positions = [i for i, c in enumerate(chars) if c.isdigit()][-8:]
    for position, digit in zip(positions, new[-8:], strict=True):
        chars[position] = digit
    return "".join(chars)


def _renamed(record: Record, emails: dict[str, str], phones: dict[str, str]) -> Record:
    out = dict(record)
    email = record.get("EmailAddress")
    if isinstance(email, str) and normalize_email(email) in emails:
        out["EmailAddress"] = _restyled_email(email, emails[normalize_email(email)])
    phone = record.get("PhoneNumber")
    if isinstance(phone, str) and normalize_phone(phone) in phones:
        out["PhoneNumber"] = _restyled_phone(phone, phones[normalize_phone(phone)])
    return out


def _renamed_wix(info: Record, emails: dict[str, str], phones: dict[str, str]) -> Record:
    out = dict(info)
    if "emails" in info:
        out["emails"] = {
            "items": [
                {**item, "email": _restyled_email(item["email"], emails[key])}
                if (key := normalize_email(item["email"])) in emails
                else item
                for item in info["emails"]["items"]
            ]
        }
    if "phones" in info:
        out["phones"] = {
            "items": [
                {**item, "phone": _restyled_phone(item["phone"], phones[key])}
                if (key := normalize_phone(item["phone"])) in phones
                else item
                for item in info["phones"]["items"]
            ]
        }
    return out

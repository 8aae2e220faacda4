"""Tests of the seed data generator: determinism, wire shapes, tricky cases, expectations.

The expectations are recomputed here independently (plain loops over all Wix contacts, own
normalization) rather than with the generator's helpers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from typing import Any

import pytest

from services.connectors.seed import SeedData, generate

PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
EMAIL_TAGS = {"UNTAGGED", "MAIN", "HOME", "WORK"}
PHONE_TAGS = {"UNTAGGED", "MAIN", "HOME", "MOBILE", "WORK", "FAX"}
ADDRESS_TAGS = {"UNTAGGED", "HOME", "WORK", "BILLING", "SHIPPING"}
EMPLOYEE_KEYS = {
    "Number",
    "FirstName",
    "LastName",
    "EmailAddress",
    "PhoneNumber",
    "DateOfBirth",
    "HiredDate",
    "JobTitle",
    "Gender",
    "IsArchived",
    "MailAddress",
}
CUSTOMER_KEYS = {
    "Number",
    "IsPerson",
    "Name",
    "LegalName",
    "FirstName",
    "LastName",
    "OrganizationNumber",
    "EmailAddress",
    "PhoneNumber",
    "WebsiteUrl",
    "DateOfBirth",
    "IsArchived",
    "CurrencyCode",
    "CustomerSince",
    "MailAddress",
}
CONTACT_PERSON_KEYS = {
    "FirstName",
    "LastName",
    "EmailAddress",
    "PhoneNumber",
    "Title",
    "IsActive",
    "IsDefault",
}
PHONE_FORMATS = {  # format example -> pattern
    "+47 912 34 567": r"\+47 [49]\d\d \d\d \d{3}",
    "0047 91234567": r"0047 [49]\d{7}",
    "912 34 567": r"[49]\d\d \d\d \d{3}",
    "91234567": r"[49]\d{7}",
    "22 12 34 56": r"[235-7]\d \d\d \d\d \d\d",
    "+47 22 12 34 56": r"\+47 [235-7]\d \d\d \d\d \d\d",
    "22123456": r"[235-7]\d{7}",
}
Ref = tuple[str, int]


@pytest.fixture(scope="module")
def data() -> SeedData:
    return generate(500, seed=42)


# --- independent re-implementation of the matching rules ----------------------------------------
def norm_phone(value: str) -> str:
    compact = re.sub(r"\s", "", value)
    if compact.startswith("0047"):
        compact = "+47" + compact[4:]
    if re.fullmatch(r"\d{8}", compact):
        compact = "+47" + compact
    return compact


def key_of(resource: str, record: dict[str, Any]) -> tuple[str, str] | None:
    email = (record["EmailAddress"] or "").strip().lower()
    if email:
        return ("email", email)
    if resource == "employees" and record["PhoneNumber"]:
        return ("phone", norm_phone(record["PhoneNumber"]))
    return None


def wix_has(info: dict[str, Any], key: tuple[str, str]) -> bool:
    kind, value = key
    if kind == "email":
        return any(
            i["email"].strip().lower() == value for i in info.get("emails", {}).get("items", [])
        )
    return any(norm_phone(i["phone"]) == value for i in info.get("phones", {}).get("items", []))


def all_records(d: SeedData) -> list[tuple[str, int, dict[str, Any]]]:
    return (
        [("employees", i, r) for i, r in enumerate(d.employees)]
        + [("customers", i, r) for i, r in enumerate(d.customers)]
        + [("contact_persons", i, r) for i, (_, r) in enumerate(d.contact_persons)]
    )


def emails_of(info: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = info.get("emails", {}).get("items", [])
    return items


def phones_of(info: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = info.get("phones", {}).get("items", [])
    return items


# --- determinism ---------------------------------------------------------------------------------
def test_same_seed_same_data_other_seed_other_data(data: SeedData) -> None:
    assert generate(500, seed=42) == data
    assert generate(500) == data  # the default seed is 42
    other = generate(500, seed=43)
    assert other != data
    assert other.employees != data.employees and other.wix_contacts != data.wix_contacts


def test_independent_of_hash_randomization() -> None:
    script = (
        "import hashlib, json, dataclasses;"
        "from services.connectors.seed import generate;"
        "d = dataclasses.asdict(generate(300, seed=7));"
        "print(hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


@pytest.mark.parametrize("records", range(0, 40))
def test_small_sizes(records: int) -> None:
    d = generate(records, seed=records)
    assert len(d.employees) + len(d.customers) + len(d.contact_persons) == records
    for parent, _ in d.contact_persons:
        assert d.customers[parent]["IsPerson"] is False
    e = d.expectations
    assert e["wix_contacts_after_sync"] == len(d.wix_contacts) + e["created_contacts"]
    assert e["linked_records"] == records - e["review_items"]
    json.dumps(e)


def test_negative_records_rejected() -> None:
    with pytest.raises(ValueError, match="records"):
        generate(-1)


# --- wire shapes ---------------------------------------------------------------------------------
def _pascal_everywhere(record: dict[str, Any]) -> None:
    for key, value in record.items():
        assert PASCAL.match(key), key
        assert key not in {"Id", "ContactId"} and not key.endswith("DateTimeOffset"), key
        if isinstance(value, dict):
            _pascal_everywhere(value)


def _check_mail_address(address: dict[str, Any]) -> None:
    assert {"AddressLine1", "ZipCode", "City", "CountryCode"} <= set(address)
    assert set(address) <= {"AddressLine1", "AddressLine2", "ZipCode", "City", "CountryCode"}
    assert re.fullmatch(r"\d{4}", address["ZipCode"]) and address["CountryCode"] == "NO"


def _opt_str(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() != "")


def _valid_orgnr(value: str) -> bool:
    digits = [int(c) for c in value]
    check = 11 - sum(w * d for w, d in zip((3, 2, 7, 6, 5, 4, 3, 2), digits, strict=False)) % 11
    return len(digits) == 9 and check != 10 and check % 11 == digits[8]


def test_poweroffice_wire_shapes(data: SeedData) -> None:
    date = re.compile(r"\d{4}-\d{2}-\d{2}")
    for i, emp in enumerate(data.employees):
        _pascal_everywhere(emp)
        assert set(emp) == EMPLOYEE_KEYS
        assert emp["Number"] == i + 1
        assert isinstance(emp["FirstName"], str) and isinstance(emp["LastName"], str)
        assert _opt_str(emp["EmailAddress"]) and _opt_str(emp["PhoneNumber"])
        assert date.fullmatch(emp["DateOfBirth"]) and date.fullmatch(emp["HiredDate"])
        assert emp["IsArchived"] is False and emp["Gender"] in {"Male", "Female"}
        _check_mail_address(emp["MailAddress"])
    for cust in data.customers:
        _pascal_everywhere(cust)
        assert set(cust) == CUSTOMER_KEYS
        assert isinstance(cust["IsPerson"], bool) and isinstance(cust["Number"], int)
        assert _opt_str(cust["EmailAddress"]) and _opt_str(cust["PhoneNumber"])
        if cust["IsPerson"]:
            assert isinstance(cust["FirstName"], str) and isinstance(cust["LastName"], str)
            assert cust["Name"] is None and cust["OrganizationNumber"] is None
        else:
            assert isinstance(cust["Name"], str) and cust["Name"].rsplit(" ", 1)[1] in {
                "AS",
                "ASA",
                "ANS",
            }
            assert cust["FirstName"] is None and cust["LastName"] is None
            assert _valid_orgnr(cust["OrganizationNumber"])
            assert cust["EmailAddress"], "companies always have an e-mail"
        _check_mail_address(cust["MailAddress"])
    defaults: Counter[int] = Counter()
    for parent, cp in data.contact_persons:
        _pascal_everywhere(cp)
        assert set(cp) == CONTACT_PERSON_KEYS
        assert 0 <= parent < len(data.customers) and data.customers[parent]["IsPerson"] is False
        assert isinstance(cp["FirstName"], str) and isinstance(cp["LastName"], str)
        assert _opt_str(cp["EmailAddress"]) and _opt_str(cp["PhoneNumber"])
        defaults[parent] += cp["IsDefault"]
    assert set(defaults.values()) == {1}, "one default contact person per company"


def test_wix_info_shapes(data: SeedData) -> None:
    allowed = {"name", "emails", "phones", "addresses", "company", "labelKeys"}
    labels = set(data.expectations["wix_label_keys"])
    for info in data.wix_contacts:
        assert set(info) <= allowed
        assert info.get("name") or emails_of(info) or phones_of(info), "Wix needs name/email/phone"
        if "name" in info:
            assert set(info["name"]) <= {"first", "last"} and info["name"].get("first")
        for kind, items, tags in (
            ("emails", emails_of(info), EMAIL_TAGS),
            ("phones", phones_of(info), PHONE_TAGS),
        ):
            if kind in info:
                assert set(info[kind]) == {"items"} and 1 <= len(items) <= 50
                assert sum(item["primary"] is True for item in items) == 1
            for item in items:
                assert item["tag"] in tags and isinstance(item["primary"], bool)
                if kind == "emails":
                    assert set(item) == {"tag", "email", "primary"}
                    assert 1 <= len(item["email"]) <= 320 and item["email"] == item["email"].strip()
                else:
                    assert set(item) == {"tag", "countryCode", "phone", "primary"}
                    assert item["countryCode"] == "NO" and 1 <= len(item["phone"]) <= 50
        for item in info.get("addresses", {}).get("items", []):
            assert item["tag"] in ADDRESS_TAGS
            assert set(item["address"]) == {"addressLine", "city", "postalCode", "country"}
        assert set(info.get("labelKeys", {}).get("items", [])) <= labels


def test_wix_emails_unique_and_extra_items_never_match(data: SeedData) -> None:
    wix_emails = [i["email"].lower() for info in data.wix_contacts for i in emails_of(info)]
    assert len(wix_emails) == len(set(wix_emails))
    po_emails = {(r["EmailAddress"] or "").strip().lower() for _, _, r in all_records(data)}
    po_phones = {norm_phone(r["PhoneNumber"]) for _, _, r in all_records(data) if r["PhoneNumber"]}
    for info in data.wix_contacts:
        for item in emails_of(info):
            if not item["primary"]:
                assert item["email"].lower() not in po_emails
        for item in phones_of(info):
            if not item["primary"]:
                assert norm_phone(item["phone"]) not in po_phones


# --- tricky cases --------------------------------------------------------------------------------
def test_record_split(data: SeedData) -> None:
    e = data.expectations
    assert (len(data.employees), len(data.customers), len(data.contact_persons)) == (125, 225, 150)
    assert e["records_per_flow"] == {"employees": 125, "customers": 225, "contact_persons": 150}
    companies = sum(not c["IsPerson"] for c in data.customers)
    assert companies == e["customers_company"] and 0.5 < companies / 225 < 0.6
    assert 225 - companies == e["customers_person"]
    suffixes = Counter(c["Name"].rsplit(" ", 1)[1] for c in data.customers if not c["IsPerson"])
    assert dict(suffixes) == e["company_suffixes"] and min(suffixes.values()) >= 5


def test_names_and_addresses_are_norwegian(data: SeedData) -> None:
    names = [f"{r['FirstName']} {r['LastName']} {r.get('Name')}" for _, _, r in all_records(data)]
    special = sum(bool(re.search("[æøåÆØÅ]", n)) for n in names)
    assert special == data.expectations["records_with_aeoeaa"] and special / len(names) > 0.25
    capitals = "".join(names)
    assert "Å" in capitals and "Ø" in capitals and "Æ" in capitals
    assert any(c["MailAddress"]["City"] == "Oslo" for c in data.customers)


def test_email_spellings(data: SeedData) -> None:
    emails = [r["EmailAddress"] for _, _, r in all_records(data) if r["EmailAddress"]]
    spaces = [e for e in emails if e != e.strip()]
    trimmed = [e for e in emails if e == e.strip()]
    upper = [e for e in trimmed if e == e.upper()]
    mixed = [e for e in trimmed if e not in upper and e != e.lower()]
    exp = data.expectations
    assert (len(upper), len(spaces), len(mixed)) == (
        exp["emails_upper_case"],
        exp["emails_with_spaces"],
        exp["emails_mixed_case"],
    )
    assert 0.04 < len(upper) / len(emails) < 0.08 and 0.04 < len(spaces) / len(emails) < 0.08


def test_phone_spellings(data: SeedData) -> None:
    counts = dict.fromkeys(PHONE_FORMATS, 0)
    for _, _, r in all_records(data):
        if r["PhoneNumber"]:
            phone = r["PhoneNumber"]
            fmt = [f for f, pattern in PHONE_FORMATS.items() if re.fullmatch(pattern, phone)]
            assert len(fmt) == 1, r["PhoneNumber"]
            counts[fmt[0]] += 1
            assert re.fullmatch(r"\+47\d{8}", norm_phone(r["PhoneNumber"]))
    assert counts == data.expectations["phone_formats"] and min(counts.values()) > 0
    landlines = sum(counts[f] for f in ("22 12 34 56", "+47 22 12 34 56", "22123456"))
    assert landlines == data.expectations["landline_phones"]


def test_missing_fields(data: SeedData) -> None:
    exp = data.expectations
    recs = all_records(data)
    assert sum(not r["EmailAddress"] for _, _, r in recs) == exp["records_without_email"] > 0
    assert sum(not r["PhoneNumber"] for _, _, r in recs) == exp["records_without_phone"] > 0
    neither = sum(not e["EmailAddress"] and not e["PhoneNumber"] for e in data.employees)
    assert neither == exp["employees_without_email_and_phone"] == 4  # 3 % of 125
    by_phone = sum(not e["EmailAddress"] and bool(e["PhoneNumber"]) for e in data.employees)
    assert by_phone == exp["employees_matched_by_phone"] > 0
    assert sum(key_of(res, r) is None for res, _, r in recs) == exp["records_without_key"]
    for kind in (True, False):
        people = [c for c in data.customers if c["IsPerson"] is kind]
        assert any(not c["PhoneNumber"] for c in people)
    assert any(not c["EmailAddress"] for c in data.customers if c["IsPerson"])
    assert any(not cp["EmailAddress"] for _, cp in data.contact_persons)


def test_people_in_several_records(data: SeedData) -> None:
    by_email: dict[str, list[tuple[str, int, dict[str, Any]]]] = defaultdict(list)
    for res, i, r in all_records(data):
        if r["EmailAddress"]:
            by_email[r["EmailAddress"].strip().lower()].append((res, i, r))
    emp_and_cust = cp_two = 0
    for group in by_email.values():
        if len(group) == 1:
            continue
        assert len(group) == 2, "only the intended pairs share an e-mail"
        names = {(r["FirstName"], r["LastName"]) for _, _, r in group}
        assert len(names) == 1
        kinds = sorted(res for res, _, _ in group)
        if kinds == ["customers", "employees"]:
            emp = next(r for res, _, r in group if res == "employees")
            cust = next(r for res, _, r in group if res == "customers")
            assert cust["IsPerson"] is True
            assert norm_phone(emp["PhoneNumber"]) == norm_phone(cust["PhoneNumber"])
            emp_and_cust += 1
        else:
            assert kinds == ["contact_persons", "contact_persons"]
            parents = {data.contact_persons[i][0] for _, i, _ in group}
            assert len(parents) == 2
            cp_two += 1
    exp = data.expectations
    assert emp_and_cust == exp["employee_and_customer"] == 6
    assert cp_two == exp["contact_person_of_two_companies"] == 6
    # two different people never share a phone number
    by_phone: dict[str, set[str]] = defaultdict(set)
    for _, _, r in all_records(data):
        if r["PhoneNumber"]:
            by_phone[norm_phone(r["PhoneNumber"])].add((r["EmailAddress"] or "").strip().lower())
    assert all(len(v) == 1 for v in by_phone.values())


def test_preexisting_wix_contacts(data: SeedData) -> None:
    exp = data.expectations
    differently_written = 0
    for res, _, r in all_records(data):
        key = key_of(res, r)
        if key is None or key[0] != "email":
            continue
        hits = [info for info in data.wix_contacts if wix_has(info, key)]
        for info in hits:
            wix_email = next(i["email"] for i in emails_of(info) if i["email"].lower() == key[1])
            assert wix_email != r["EmailAddress"], "written differently than in PowerOffice"
            differently_written += 1
    assert differently_written > 20
    not_first = [
        info
        for info in data.wix_contacts
        if any(items and not items[0]["primary"] for items in (emails_of(info), phones_of(info)))
    ]
    assert len(not_first) == exp["wix_primary_not_first"] >= 5
    assert any(info.get("addresses") for info in data.wix_contacts)
    assert any(info.get("labelKeys") for info in data.wix_contacts)
    assert any(info.get("company") for info in data.wix_contacts)


def test_ambiguous_and_wix_only(data: SeedData) -> None:
    exp = data.expectations
    assert exp["review_items"] == len(exp["review"]) == 3
    for item in exp["review"]:
        assert item["resource"] == "employees"
        emp = data.employees[item["index"]]
        assert not emp["EmailAddress"] and emp["PhoneNumber"]
        pair = [data.wix_contacts[w] for w in item["wix_indices"]]
        assert len(pair) == 2 and not any(emails_of(info) for info in pair)
        assert {norm_phone(phones_of(info)[0]["phone"]) for info in pair} == {
            norm_phone(emp["PhoneNumber"])
        }
    assert exp["ambiguous_wix_contacts"] == 6
    keys = {key_of(res, r) for res, _, r in all_records(data)} - {None}
    wix_only = [
        info
        for info in data.wix_contacts
        if not any(wix_has(info, k) for k in keys if k is not None)
    ]
    assert len(wix_only) == exp["wix_only_contacts"] == 20


# --- expectations, recomputed --------------------------------------------------------------------
def recompute(d: SeedData) -> dict[str, Any]:
    groups: dict[Any, list[Ref]] = defaultdict(list)
    review: list[Ref] = []
    for res, i, r in all_records(d):
        key = key_of(res, r)
        if key is None:
            groups[("new", res, i)].append((res, i))
            continue
        hits = [w for w, info in enumerate(d.wix_contacts) if wix_has(info, key)]
        if len(hits) > 1:
            review.append((res, i))
        elif hits:
            groups[("wix", hits[0])].append((res, i))
        else:
            groups[("new", key)].append((res, i))
    existing = {k for k in groups if k[0] == "wix"}
    created = len(groups) - len(existing)
    return {
        "matched_existing_records": sum(len(groups[k]) for k in existing),
        "matched_existing_contacts": len(existing),
        "created_contacts": created,
        "wix_contacts_after_sync": len(d.wix_contacts) + created,
        "review_items": len(review),
        "review_refs": sorted(review),
        "shared_contacts": sum(len(g) > 1 for g in groups.values()),
        "untouched_wix_contacts": len(d.wix_contacts) - len(existing),
        "partition": sorted(sorted(g) for g in groups.values()),
        "existing": sorted((k[1], sorted(g)) for k, g in groups.items() if k[0] == "wix"),
    }


@pytest.mark.parametrize(("records", "seed"), [(500, 42), (137, 3), (1000, 2024)])
def test_expectations_match_independent_recomputation(records: int, seed: int) -> None:
    d = generate(records, seed=seed)
    exp = d.expectations
    again = recompute(d)
    for key in (
        "matched_existing_records",
        "matched_existing_contacts",
        "created_contacts",
        "wix_contacts_after_sync",
        "review_items",
        "shared_contacts",
        "untouched_wix_contacts",
    ):
        assert exp[key] == again[key], key
    assert sorted((r["resource"], r["index"]) for r in exp["review"]) == again["review_refs"]
    partition = sorted(sorted((res, i) for res, i in g["records"]) for g in exp["contact_groups"])
    assert partition == again["partition"]
    existing = sorted(
        (g["wix_index"], sorted((res, i) for res, i in g["records"]))
        for g in exp["contact_groups"]
        if g["wix_index"] is not None
    )
    assert existing == again["existing"]
    assert exp["linked_records"] == records - exp["review_items"]
    assert exp["wix_contacts_before_sync"] == len(d.wix_contacts)
    assert exp["records"] == records and exp["seed"] == seed
    assert exp["matched_existing_records"] > exp["matched_existing_contacts"] > 0
    json.dumps(exp)


def test_scale_50k() -> None:
    d = generate(50_000, seed=1)
    assert (len(d.employees), len(d.customers), len(d.contact_persons)) == (12_500, 22_500, 15_000)
    e = d.expectations
    assert e["review_items"] == 250
    assert e["wix_contacts_after_sync"] == len(d.wix_contacts) + e["created_contacts"]
    assert max(len(emails_of(i)) + len(phones_of(i)) for i in d.wix_contacts) <= 50

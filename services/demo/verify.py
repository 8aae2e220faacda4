"""Check a finished sync against the two systems themselves — the result a person can verify.

``reconcile`` takes what the simulators hold (every PowerOffice record, every Wix contact) and
the links the mapper made, and answers the questions of the spec's promise:

- is every PowerOffice record linked exactly once (or in review, with a reason)?
- how many Wix contacts were created and how many pre-existing ones were matched?
- are there duplicate Wix contacts (two contacts for one e-mail, or one phone when no e-mail)?
- do the synced properties of every linked record equal its contact's (normalized)?

Pure: no I/O. Imports only the mapper's pure domain for reading and comparing values.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.mapper.domain import read_hub, read_member
from services.mapper.domain.mappings import kind_of
from services.mapper.domain.normalize import normalize_email, normalize_phone, same

RESOURCES = ("employees", "customers", "contact_persons")


@dataclass(frozen=True)
class LinkView:
    link_id: str
    status: str
    contact_id: str | None
    members: tuple[tuple[str, str], ...]  # (resource, record id)


def duplicate_contacts(contacts: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """Groups of contact ids sharing a primary e-mail (or, without e-mail, a primary phone)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for contact in contacts:
        props = read_hub(contact)
        email = normalize_email(props.get("email"))
        phone = normalize_phone(props.get("phone"))
        key = f"email:{email}" if email else (f"phone:{phone}" if phone else None)
        if key:
            groups[key].append(str(contact["id"]))
    return [ids for ids in groups.values() if len(ids) > 1]


def reconcile(
    records: Mapping[str, list[dict[str, Any]]],
    contacts: list[dict[str, Any]],
    contacts_before: set[str],
    links: list[LinkView],
    review: set[tuple[str, str]],
) -> dict[str, Any]:
    by_contact = {str(c["id"]): c for c in contacts}
    active = [link for link in links if link.status == "active" and link.contact_id]
    memberships: Counter[tuple[str, str]] = Counter()
    contact_of: dict[tuple[str, str], str] = {}
    for link in active:
        for member in link.members:
            memberships[member] += 1
            contact_of[member] = str(link.contact_id)

    per_flow: dict[str, dict[str, int]] = {}
    unlinked: list[dict[str, str]] = []
    mismatches: list[dict[str, str]] = []
    for resource in RESOURCES:
        linked = in_review = 0
        for record in records.get(resource, []):
            identity = (resource, str(record["Id"]))
            if memberships[identity] >= 1:
                linked += 1
                contact = by_contact.get(contact_of[identity])
                if contact is None:
                    mismatches.append(
                        {
                            "resource": resource,
                            "id": identity[1],
                            "property": "*",
                            "reason": "linked contact missing",
                        }
                    )
                    continue
                wix_props = read_hub(contact)
                for name, value in read_member(resource, record).items():
                    if not same(kind_of(name), value, wix_props.get(name)):
                        mismatches.append(
                            {
                                "resource": resource,
                                "id": identity[1],
                                "property": name,
                                "reason": "values differ",
                            }
                        )
            elif identity in review:
                in_review += 1
            else:
                unlinked.append({"resource": resource, "id": identity[1]})
        per_flow[resource] = {
            "records": len(records.get(resource, [])),
            "linked": linked,
            "in_review": in_review,
        }

    linked_contacts = {str(link.contact_id) for link in active}
    # Only duplicates the sync made count: contacts that already shared a key before the sync
    # (the seeded ambiguous cases) are the reason for review items, not an engine fault.
    duplicates = [
        ids for ids in duplicate_contacts(contacts) if any(c not in contacts_before for c in ids)
    ]
    return {
        "flows": per_flow,
        "records": sum(f["records"] for f in per_flow.values()),
        "linked_records": sum(f["linked"] for f in per_flow.values()),
        "linked_more_than_once": sum(1 for n in memberships.values() if n > 1),
        "unlinked_records": unlinked,
        "links": len(active),
        "links_to_missing_contacts": sum(1 for c in linked_contacts if c not in by_contact),
        "wix_contacts_before": len(contacts_before),
        "wix_contacts_after": len(contacts),
        "contacts_created": len(set(by_contact) - contacts_before),
        "contacts_matched": len(linked_contacts & contacts_before),
        "duplicate_contacts": sum(
            sum(1 for c in ids if c not in contacts_before)
            - (0 if set(ids) & contacts_before else 1)
            for ids in duplicates
        ),
        "duplicate_groups": duplicates[:20],
        "value_mismatches": len(mismatches),
        # Links with at least one member whose values differ from its contact's.
        "divergent_contacts": len({contact_of[(m["resource"], m["id"])] for m in mismatches}),
        "mismatch_examples": mismatches[:20],
    }

"""The connector registry reproduces the tables core and the mapper held before they were derived
from the descriptors: the same topic names, Avro record types and record conventions, so topics,
stored events and links written by the previous version are read as before."""

from __future__ import annotations

import json
from pathlib import Path

from services.connectors import registry
from services.connectors.poweroffice.models import REFERENCE_FIELD
from services.connectors.poweroffice.stream import API_RESOURCE
from services.core.codec import DEFAULT_SCHEMAS_DIR
from services.core.records import RECORD_TYPES
from services.core.topics import TopicLayout
from services.mapper.wiring import RECORDS, REGISTERED

# The literal tables of the version before the registry (core/topics.py, core/records.py,
# mapper/wiring.py): the golden the derived ones must equal.
PREVIOUS_RESOURCES = {
    "poweroffice": ("employees", "customers", "contact_persons"),
    "wix": ("contacts",),
}
PREVIOUS_RECORD_TYPES = {
    ("poweroffice", "employees"): "tether.poweroffice.Employee",
    ("poweroffice", "customers"): "tether.poweroffice.Customer",
    ("poweroffice", "contact_persons"): "tether.poweroffice.ContactPerson",
    ("wix", "contacts"): "tether.wix.Contact",
}
PREVIOUS_TOPICS = [
    "tether.changes.poweroffice.employees",
    "tether.changes.poweroffice.customers",
    "tether.changes.poweroffice.contact_persons",
    "tether.changes.wix.contacts",
    "tether.commands.poweroffice.employees",
    "tether.commands.poweroffice.customers",
    "tether.commands.poweroffice.contact_persons",
    "tether.commands.wix.contacts",
    "tether.outcomes",
    "tether.deadletters.extractor",
    "tether.deadletters.mapper",
    "tether.deadletters.loader",
    "tether.operator-actions",
    "tether.cursors",
    # Core's own topics of the tenant registry (issue 16): no connector names them.
    "tether.tenants",
    "tether.tenant-status",
    "tether.webhooks",
]


def test_installed_tables_equal_the_previous_literal_ones() -> None:
    registry.install()
    assert dict(RECORD_TYPES) == PREVIOUS_RECORD_TYPES
    assert list(RECORD_TYPES) == list(PREVIOUS_RECORD_TYPES)
    assert TopicLayout().all_topics() == PREVIOUS_TOPICS
    assert dict(REGISTERED.resources) == PREVIOUS_RESOURCES


def test_mapper_record_conventions_equal_the_previous_literal_ones() -> None:
    po, wix = RECORDS["poweroffice"], RECORDS["wix"]
    assert (po.display_name, po.id_field, po.changed_at_field) == (
        "PowerOffice",
        "Id",
        "LastChangedDateTimeOffset",
    )
    assert (po.revisioned, po.reference_prefix) == (False, "tether:")
    assert dict(po.reference_fields) == {
        "employees": "ExternalImportReference",
        "customers": "ExternalImportReference",
        "contact_persons": "ExternalCode",
    }
    assert (wix.display_name, wix.id_field, wix.changed_at_field) == ("Wix", "id", "updatedDate")
    assert (wix.revisioned, wix.reference_prefix, dict(wix.reference_fields)) == (True, "", {})


def test_every_record_type_is_a_schema_in_the_change_and_command_unions() -> None:
    for message, union in (("tether.ChangeEvent", "record"), ("tether.Command", "target_record")):
        schema = json.loads(Path(DEFAULT_SCHEMAS_DIR, f"{message}.avsc").read_text())
        (record,) = [field for field in schema["fields"] if field["name"] == union]
        for descriptor in registry.DESCRIPTORS:
            for resource in descriptor.resources.values():
                assert Path(DEFAULT_SCHEMAS_DIR, f"{resource.record_type}.avsc").is_file()
                assert resource.record_type in record["type"], (message, resource.record_type)


def test_poweroffice_api_names_come_from_the_one_resource_table() -> None:
    po = registry.BY_SYSTEM["poweroffice"]
    assert {name: r.api_resource for name, r in po.resources.items()} == {
        "employees": "employees",
        "customers": "customers",
        "contact_persons": "contactpersons",
    }
    assert {name: r.api_resource for name, r in po.resources.items()} == API_RESOURCE
    for resource in po.resources.values():
        assert REFERENCE_FIELD[resource.api_resource] == resource.reference_field

"""The mapper's wiring: the connectors (systems) it registers for dataflows to name.

A dataflow file names its hub and its member flows by system and resource
(``services.mapper.domain.dataflow``); it is validated against ``REGISTERED`` — each system's
resources, and the field accessors of each system that can be the hub — and compiled into the
registries the domain reads. ``RECORDS`` says what the shell (``convert``) must know of each
system's records. Resources, key/change/reference fields come from the connector descriptors
(``services.connectors.registry``); importing this module installs them into core's topic and
record-type tables. This is the one place of the mapper that names the systems it can sync; a
new system is a new entry here (and its connector package); a new resource of one is none.

Imports: the mapper's domain, the connector registry (descriptors) and field tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.connectors import registry
from services.connectors.registry import BY_SYSTEM, DESCRIPTORS
from services.connectors.wix import fields as wix_fields
from services.core.connector import ConnectorDescriptor
from services.mapper.domain.dataflow import CompiledDataflow, Registered
from services.mapper.domain.mappings import HubAccessors, KeyKind, use_dataflow
from services.mapper.domain.normalize import e164_form

registry.install()  # core's topics and record types, for whatever imports the mapper's wiring

WIX_CONTACT_ACCESSORS = HubAccessors(
    fields={path: field.read for path, field in wix_fields.FIELDS.items()},
    identifiers=lambda record: [
        (KeyKind(kind), value) for kind, value in wix_fields.identifiers(record)
    ],
    has_other_items=wix_fields.has_other_items,
    revision=wix_fields.revision,
    write_form=e164_form,
)
"""How the domain reads a Wix contact as the hub record: the Wix connector's field table
(``services.connectors.wix.fields``, the one the loader writes with)."""

REGISTERED = Registered(
    resources={d.system: tuple(d.resources) for d in DESCRIPTORS},
    hubs={"wix": WIX_CONTACT_ACCESSORS},
)


@dataclass(frozen=True)
class RecordConventions:
    """What the mapper's shell must know of one system's records (the connector's knowledge)."""

    display_name: str
    """The system's name as operators read it (in explanations)."""
    id_field: str
    """The record's id field (read when an outcome names no target id)."""
    changed_at_field: str
    """Where a record says when it last changed (the source time of an outcome's state)."""
    revisioned: bool
    """Whether a change's ``source_version`` and an outcome's ``target_revision`` are the
    record's revision (which orders its states before timestamps do)."""
    reference_prefix: str
    """A create's idempotency key: this prefix + the link id (``convert.idempotency_key``)."""
    reference_fields: Mapping[str, str]
    """Per resource, the field where a created record keeps that key, for the resources whose
    records the mapper recognises as its own creates (``convert.referenced_link_id``)."""


def conventions(
    descriptor: ConnectorDescriptor[Any, Any], display_name: str, reference_prefix: str
) -> RecordConventions:
    """A system's record conventions, read from its connector's descriptor: the id field is the
    resources' key field, the change time their ``changed_at_field``, revisioned when updates
    are guarded by the version; the resources whose creates must carry our reference
    (``reference_required``) keep it in their ``reference_field``."""
    resources = descriptor.resources.values()
    (id_field,) = {r.key_field for r in resources}
    (changed_at_field,) = {r.changed_at_field for r in resources}
    return RecordConventions(
        display_name=display_name,
        id_field=id_field,
        changed_at_field=changed_at_field,
        revisioned=all(r.guarded_by == "version" for r in resources),
        reference_prefix=reference_prefix,
        reference_fields={r.name: r.reference_field for r in resources if r.reference_required},
    )


RECORDS: dict[str, RecordConventions] = {
    # ExternalImportReference/ExternalCode: at most 50 characters, no comma; "tether:" + a
    # 36-character link id = 43.
    "poweroffice": conventions(BY_SYSTEM["poweroffice"], "PowerOffice", "tether:"),
    # The link id itself, kept in the contact's ``tether-link-id`` extended field (which a
    # create may go without: the Wix duplicate rule finds the contact again).
    "wix": conventions(BY_SYSTEM["wix"], "Wix", ""),
}


def install(dataflow: CompiledDataflow) -> None:
    """Make ``dataflow``'s hub, flows and properties the ones the domain reads (before any
    change is handled; see ``mappings.use_dataflow``)."""
    use_dataflow(dataflow.hub, dataflow.flows, dataflow.properties)

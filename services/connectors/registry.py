"""Every connector this build of Tether runs: the one list of descriptors, and the wiring that
fills core's resource tables from it.

A resource is declared once, in its connector's ``DESCRIPTOR`` (``ResourceDescriptor``: fields,
key/version/reference fields, the API's name, the Avro record type); core's topics and record
types (``services.core.registry``) and the services' wiring tables are derived from
``DESCRIPTORS``. A new system is one more entry here (and its package).

Imports: the connector adapters (never the simulators) and ``services.core.registry``.
"""

from __future__ import annotations

from typing import Any, Final

from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.core import registry
from services.core.connector import ConnectorDescriptor

DESCRIPTORS: Final[tuple[ConnectorDescriptor[Any, Any], ...]] = (POWEROFFICE, WIX)
"""In topic order: a system's topics before the next one's (``TopicLayout.all_topics``)."""

BY_SYSTEM: Final[dict[str, ConnectorDescriptor[Any, Any]]] = {d.system: d for d in DESCRIPTORS}


def install() -> None:
    """Fill core's topic and record-type tables from ``DESCRIPTORS`` (idempotent)."""
    registry.install(DESCRIPTORS)

"""Core's resource tables, filled from the connector descriptors: which systems and resources a
deployment has topics for, and the Avro record type that carries each resource's records.

Core names no connector (import-linter), so ``topics.RESOURCES`` and ``records.RECORD_TYPES``
start empty and :func:`install` fills them from the descriptors it is given
(``ConnectorDescriptor.resources``: ``ResourceDescriptor.record_type``). The wiring calls it
before anything asks for a topic or a record type: ``services.connectors.registry.install`` —
from the ``tether`` command, the services' wiring modules and the tests' ``conftest``.

The tables are filled in place (modules hold them by reference) and in the descriptors' order,
which is the order of ``TopicLayout.all_topics()``. Installing the same descriptors again
changes nothing.

Imports: core's connector interface, topics and records only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.core.connector import ConnectorDescriptor
from services.core.records import RECORD_TYPES
from services.core.topics import RESOURCES


def install(descriptors: Iterable[ConnectorDescriptor[Any, Any]]) -> None:
    """Register every resource of ``descriptors`` with core's topic and record-type tables."""
    for descriptor in descriptors:
        RESOURCES[descriptor.system] = tuple(descriptor.resources)
        for name, resource in descriptor.resources.items():
            RECORD_TYPES[(descriptor.system, name)] = resource.record_type

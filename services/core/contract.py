"""The enums of Tether's Avro contract, defined once for every service.

Each class here is the Python face of one Avro enum in ``schemas/`` (same name, same symbols,
same order); ``tests/core/test_contract.py`` fails when a schema and its class differ. Services
use these on the wire side of their code — the extractor's change events, the loader's commands
and outcomes, the console's operator actions — and translate to their own domain enums where
the domain means something else (the mapper's ``Origin`` says whether a state came from an event
or from our own write; ``ChangeOrigin`` says how the extractor saw a change).

Imports: the standard library only (no I/O).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ChangeOperation",
    "ChangeOrigin",
    "CommandAction",
    "OperatorActionKind",
    "OutcomeStatus",
]


class ChangeOperation(StrEnum):
    """``tether.ChangeOperation``: what happened to the record."""

    UPSERT = "UPSERT"
    DELETE = "DELETE"
    MERGE = "MERGE"


class ChangeOrigin(StrEnum):
    """``tether.ChangeOrigin``: how the extractor saw the change."""

    POLL = "POLL"
    WEBHOOK = "WEBHOOK"
    RECONCILE = "RECONCILE"
    OUTCOME = "OUTCOME"
    OTHER = "OTHER"


class CommandAction(StrEnum):
    """``tether.CommandAction``: the write a command asks the loader for."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class OutcomeStatus(StrEnum):
    """``tether.OutcomeStatus``: what the loader's write did."""

    CREATED = "CREATED"
    APPLIED = "APPLIED"
    NOOP = "NOOP"
    LINKED_EXISTING = "LINKED_EXISTING"
    CONFLICT = "CONFLICT"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


class OperatorActionKind(StrEnum):
    """``tether.OperatorActionKind``: what an operator asked for."""

    LINK_TO_CANDIDATE = "LINK_TO_CANDIDATE"
    CREATE_NEW_CONTACT = "CREATE_NEW_CONTACT"
    IGNORE_RECORD = "IGNORE_RECORD"
    UNIGNORE_RECORD = "UNIGNORE_RECORD"
    UNLINK = "UNLINK"
    RESYNC = "RESYNC"
    RETRY_COMMAND = "RETRY_COMMAND"
    REDRIVE_DEAD_LETTERS = "REDRIVE_DEAD_LETTERS"
    RESET_DELETE_BREAKER = "RESET_DELETE_BREAKER"

"""API call counts as the simulators saw them: reads, writes and 429s per system.

The simulators count every request they answer (``/_admin/counters``); this module folds those
rows into the figures of the demo report. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PO_WRITE_METHODS = {"POST", "PATCH", "DELETE"}
WIX_WRITE_OPERATIONS = {"create", "update", "delete", "merge"}
WIX_READ_OPERATIONS = {"get", "list", "query"}


def poweroffice_counts(counters: Mapping[str, Any]) -> dict[str, int]:
    reads = writes = throttled = 0
    for row in counters.get("requests", []):
        count = int(row["count"])
        if int(row["status"]) == 429:
            throttled += count
            continue
        if row.get("resource") == "token":
            continue
        if row["method"] in PO_WRITE_METHODS and int(row["status"]) < 400:
            writes += count
        elif row["method"] == "GET":
            reads += count
    return {"reads": reads, "writes": writes, "throttled_429": throttled}


def wix_counts(counters: Mapping[str, Any]) -> dict[str, int]:
    reads = writes = throttled = 0
    for row in counters.get("requests", []):
        count = int(row["count"])
        if int(row["status"]) == 429:
            throttled += count
            continue
        operation = str(row.get("operation", ""))
        if operation in WIX_WRITE_OPERATIONS and int(row["status"]) < 400:
            writes += count
        elif operation in WIX_READ_OPERATIONS:
            reads += count
    return {"reads": reads, "writes": writes, "throttled_429": throttled}


def difference(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {key: int(after.get(key, 0)) - int(before.get(key, 0)) for key in after}

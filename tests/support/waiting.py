"""Waiting for a condition in end-to-end tests (a bounded poll; never a timed assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], bool], timeout: float = 90.0, interval: float = 0.3) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds, asked every ``interval``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

"""The mapper's periodic INFO summary: counts of what it decided since the last summary.

``DecisionSummary.add`` takes the ``Handled`` items of each committed batch; ``take_if_due``
returns (and resets) the counts once ``interval`` seconds have passed — decisions by kind (incl.
``dead_letter`` and ``replayed``), commands by action, conflicts, held deletes, dead letters and the
open review items the caller last counted — or ``None``. Counts only: no record ids, no values,
nothing personal. The loop logs the result at INFO (``mapper summary``), so an operator reading
the logs sees the mapper at work without DEBUG.

Imports: standard library and the mapper's handler result type only (no I/O).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from services.mapper.handler import Handled


class DecisionSummary:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._since = clock()
        self._reset()

    def _reset(self) -> None:
        self.inputs = 0
        self.decisions: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()
        self.conflicts = 0
        self.deletes_held = 0

    def add(self, handled: Iterable[Handled]) -> None:
        for item in handled:
            self.inputs += 1
            self.decisions[item.result] += 1
            for _system, _resource, action in item.commands:
                self.commands[action] += 1
            self.conflicts += len(item.conflicts)
            self.deletes_held += item.deletes_held

    def take_if_due(self, open_reviews: int | None = None) -> dict[str, Any] | None:
        """The counts since the last summary once ``interval`` has passed (then reset)."""
        now = self._clock()
        if now - self._since < self.interval:
            return None
        fields: dict[str, Any] = {
            "window_seconds": round(now - self._since, 1),
            "inputs": self.inputs,
            "decisions": dict(sorted(self.decisions.items())),
            "commands": dict(sorted(self.commands.items())),
            "conflicts": self.conflicts,
            "dead_letters": self.decisions.get("dead_letter", 0),
            "deletes_held": self.deletes_held,
            "review_items_open": open_reviews,
        }
        self._since = now
        self._reset()
        return fields

"""Progress of a running stack, read the way an operator would: from the services' /metrics.

``snapshot`` scrapes the three services and sums the shared core metrics (services/core/metrics.py)
into a few numbers a person can follow while the initial sync runs: change events extracted,
commands issued by the mapper, outcomes produced by the loader, the backlog between them, API
requests and 429s per system, and the time spent waiting for API budget.

Imports: prometheus_client's text parser and the core topic layout only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from services.core.topics import TopicLayout


@dataclass
class Progress:
    extracted: float = 0.0
    commands: float = 0.0
    outcomes: float = 0.0
    dead_letters: float = 0.0
    budget_wait_seconds: float = 0.0
    api_requests: dict[str, float] = field(default_factory=dict)
    api_throttled: dict[str, float] = field(default_factory=dict)

    @property
    def backlog(self) -> float:
        return max(0.0, self.commands - self.outcomes)


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.append((sample.name, dict(sample.labels), float(sample.value)))
    return found


def snapshot(layout: TopicLayout, scrape: Callable[[str], str]) -> Progress:
    """Sum the core metrics of the extractor, mapper and loader into one ``Progress``."""
    progress = Progress()
    changes = set(layout.all_changes())
    commands = set(layout.all_commands())
    for service in ("extractor", "mapper", "loader"):
        for name, labels, value in _samples(scrape(service)):
            topic = labels.get("topic", "")
            if name == "tether_messages_produced_total":
                if topic in changes:
                    progress.extracted += value
                elif topic in commands:
                    progress.commands += value
                elif topic == layout.outcomes:
                    progress.outcomes += value
            elif name == "tether_dead_letters_total":
                progress.dead_letters += value
            elif name == "tether_api_budget_wait_seconds_total":
                progress.budget_wait_seconds += value
            elif name == "tether_api_requests_total":
                system = labels.get("system", "?")
                progress.api_requests[system] = progress.api_requests.get(system, 0.0) + value
                if labels.get("status") == "429":
                    progress.api_throttled[system] = progress.api_throttled.get(system, 0.0) + value
    return progress


def render(progress: Progress, links: int, records: int, review: int, elapsed: float) -> str:
    api = ", ".join(
        f"{system} {count:,.0f} calls ({progress.api_throttled.get(system, 0):,.0f}x 429)"
        for system, count in sorted(progress.api_requests.items())
    )
    return (
        f"[{elapsed:6.1f}s] changes {progress.extracted:,.0f} | linked {links:,}/{records:,}"
        f" | review {review} | commands {progress.commands:,.0f} applied "
        f"{progress.outcomes:,.0f} backlog {progress.backlog:,.0f}"
        f" | budget waits {progress.budget_wait_seconds:,.1f}s | {api or 'no API calls yet'}"
    )

"""The verifier's Prometheus metrics (low cardinality: flow, status, system — never a link id).

* ``tether_links_divergent{tenant,flow}`` — links whose systems disagree after the last
  completed cycle (``divergent`` + ``missing``): the number the alert
  ``TetherLinksDivergent`` watches;
* ``tether_verify_links{tenant,flow,status}`` — every checked link by verdict;
* ``tether_verify_repairs_total{system,resource}`` — repair change events emitted;
* ``tether_verify_unrepairable_total{reason}`` — divergent links no event could repair (``stuck``:
  both records equal the mapper's view; ``unencodable``: the record read cannot be encoded);
* ``tether_verify_cycles_total{result}``, ``tether_verify_last_success_timestamp_seconds``,
  ``tether_verify_cycle_seconds`` and ``tether_verify_records_read{system}``.

``tenant`` is the verifier's configured ``TETHER_TENANT``: one value per tenant deployed.

Imports: prometheus_client and the verifier's ``compare`` only.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.mapper.domain import FLOWS
from services.verify.compare import Status, Verdict

FLOW_LABELS = (*FLOWS, "wix")


class VerifyMetrics:
    def __init__(self, registry: CollectorRegistry, tenant: str = "default") -> None:
        self.tenant = tenant
        self.divergent = Gauge(
            "tether_links_divergent",
            "Links whose two systems hold different mapped values (divergent or missing record) "
            "as of the last completed verification cycle",
            ["tenant", "flow"],
            registry=registry,
        )
        self.links = Gauge(
            "tether_verify_links",
            "Links checked by the last completed verification cycle, by verdict",
            ["tenant", "flow", "status"],
            registry=registry,
        )
        self.repairs = Counter(
            "tether_verify_repairs",
            "Repair change events emitted by verification",
            ["system", "resource"],
            registry=registry,
        )
        self.unrepairable = Counter(
            "tether_verify_unrepairable",
            "Divergent links verification could emit no repair for",
            ["reason"],
            registry=registry,
        )
        self.cycles = Counter(
            "tether_verify_cycles", "Verification cycles", ["result"], registry=registry
        )
        self.last_success = Gauge(
            "tether_verify_last_success_timestamp_seconds",
            "When the last verification cycle completed (Unix time)",
            registry=registry,
        )
        self.cycle_seconds = Gauge(
            "tether_verify_cycle_seconds",
            "Duration of the last completed verification cycle",
            registry=registry,
        )
        self.records_read = Gauge(
            "tether_verify_records_read",
            "Records read from each system by the last completed cycle",
            ["system"],
            registry=registry,
        )
        for flow in FLOW_LABELS:
            self.divergent.labels(tenant, flow).set(0)

    def publish(self, verdicts: Iterable[Verdict]) -> None:
        """Set the per-flow gauges from one cycle's verdicts (flows with none go to 0)."""
        tally = Tally((v.flow, v.status) for v in verdicts)
        for flow in FLOW_LABELS:
            for status in Status:
                self.links.labels(self.tenant, flow, status.value).set(tally[(flow, status)])
            self.divergent.labels(self.tenant, flow).set(
                tally[(flow, Status.DIVERGENT)] + tally[(flow, Status.MISSING)]
            )

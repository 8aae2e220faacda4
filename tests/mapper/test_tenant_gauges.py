"""The mapper's per-tenant gauges cover every tenant in its tables, bounded by the label cap
(real PostgreSQL, real mapper loop): links by state and open review items by reason."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from services.core.tenant_labels import OTHER
from services.mapper.erasure import erase_tenant
from services.mapper.metrics import LINK_STATES

from .support import Harness, customer, employee, harness, po_event, ts, wix_contact, wix_event

pytestmark = pytest.mark.integration


def send_for(h: Harness, tenant: str, datum: dict[str, Any]) -> None:
    h.send_change({**datum, "tenant": tenant})


def gauge(h: Harness, name: str, tenant: str, **labels: str) -> float | None:
    assert h.ctx is not None
    return h.ctx.registry.get_sample_value(name, {"tenant": tenant, **labels})


@pytest.fixture
def h(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> Any:
    # cap 2: this mapper's own tenant ("default") and the first other tenant by id
    with harness(kafka_bootstrap, topic_prefix, pg_dsn, metrics_tenant_cap=2) as instance:
        instance.start()
        yield instance


def test_every_tenant_is_counted_and_those_beyond_the_cap_are_summed_into_other(
    h: Harness,
) -> None:
    links = {"acme": 1, "beta": 2, "gamma": 3}
    for tenant, n in links.items():
        for record_id in range(1, n + 1):
            send_for(
                h, tenant, po_event("employees", employee(record_id, phone=None, at=ts(1)), ts(1))
            )
    # an ambiguous match for beta: one open review item (and no link)
    send_for(h, "beta", wix_event(wix_contact("c-1", "Kari", "H", email="kari@example.no"), ts(2)))
    send_for(h, "beta", wix_event(wix_contact("c-2", "Kari", "H", email="kari@example.no"), ts(3)))
    send_for(h, "beta", po_event("customers", customer(10, at=ts(4)), ts(4)))
    h.drain()
    assert h.mapper is not None
    h.mapper._maintenance(force=True)

    links_by = "tether_mapper_links"
    # the mapper's own tenant keeps its zero series (as with one tenant per deployment)
    assert [gauge(h, links_by, "default", state=s) for s in LINK_STATES] == [0] * len(LINK_STATES)
    assert gauge(h, links_by, "acme", state="creating") == 1
    assert gauge(h, links_by, OTHER, state="creating") == 2 + 3  # beta and gamma
    assert gauge(h, links_by, "beta", state="creating") is None
    assert gauge(h, links_by, "gamma", state="creating") is None
    reviews = "tether_mapper_review_items_open"
    assert gauge(h, reviews, OTHER, reason="ambiguous_match") == 1
    assert gauge(h, reviews, "default", reason="ambiguous_match") == 0

    # a tenant whose rows are gone stops being exported
    with psycopg.connect(h.dsn, autocommit=True) as conn:
        erase_tenant(conn, "acme")
    h.mapper._maintenance(force=True)
    assert gauge(h, links_by, "acme", state="creating") is None
    assert gauge(h, links_by, OTHER, state="creating") == 5

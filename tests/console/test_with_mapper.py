"""The console against the real mapper: an ambiguous match resolved from the API.

The mapper (real loop, real Kafka, real PostgreSQL: ``tests/mapper/support.py``'s harness) puts
employee 9 in review (two Wix contacts match its phone). The console lists the item with its
candidates; an operator links it to one candidate; the mapper applies the ``OperatorAction``;
the console then shows the action applied, the review item resolved, and the new link's timeline
with the action (its actor and field changes) next to the decisions. Sending the same request
again is the same action: applied once.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.console import support
from tests.console.support import OPERATOR_TOKEN, READER_TOKEN
from tests.mapper.support import employee, harness, po_event, ts, wix_contact, wix_event

pytestmark = pytest.mark.integration


def test_resolve_an_ambiguous_match_through_the_console(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> None:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as h:
        h.start()
        h.send_change(wix_event(wix_contact("c-a", first="A", phone="+4798765432"), ts(1)))
        h.send_change(wix_event(wix_contact("c-b", first="B", phone="98765432"), ts(1)))
        h.drain()
        h.send_change(po_event("employees", employee(9, phone="987 65 432"), ts(2)))
        h.drain()
        options = {
            "kafka_bootstrap_servers": kafka_bootstrap,
            "topic_prefix": topic_prefix,
            "topic_partitions": 2,
        }
        with support.serve(pg_dsn, kafka=True, **options) as api:
            [item] = api.get("/api/v1/review-items", OPERATOR_TOKEN).json()["items"]
            assert item["reason"] == "ambiguous_match" and item["record_id"] == "9"
            detail = api.get(f"/api/v1/review-items/{item['review_id']}", OPERATOR_TOKEN).json()
            assert {c["contact_id"] for c in detail["candidate_contacts"]} == {"c-a", "c-b"}
            assert detail["record"]["props"]["phone"] == "987 65 432"  # to compare side by side
            reader_detail = api.get(f"/api/v1/review-items/{item['review_id']}", READER_TOKEN)
            assert "record" not in reader_detail.json()
            body = {
                "kind": "LINK_TO_CANDIDATE",
                "review_id": item["review_id"],
                "contact_id": "c-a",
                "reason": "same phone; c-a is the employee's own contact",
                "idempotency_key": "resolve-9",
            }
            posted = api.post("/api/v1/actions", OPERATOR_TOKEN, json=body)
            assert posted.status_code == 202, posted.text
            action_id = posted.json()["action_id"]
            h.sent += 1  # the console produced it

            def applied() -> dict[str, Any]:
                return api.get(f"/api/v1/actions/{action_id}", OPERATOR_TOKEN).json()  # type: ignore[no-any-return]

            h.drain(until=lambda: applied()["status"] != "pending")
            result = applied()
            assert result["status"] == "applied", result
            assert result["actor"] == "alice" and result["link_id"]
            link_id = result["link_id"]

            # The item is resolved, the record linked to the chosen contact.
            assert api.get("/api/v1/review-items", OPERATOR_TOKEN).json()["items"] == []
            link = api.get(f"/api/v1/links/{link_id}", OPERATOR_TOKEN).json()
            assert link["wix_contact_id"] == "c-a"
            assert {m["key"] for m in link["members"]} == {
                "poweroffice:employees:9",
                "wix:contacts:c-a",
            }
            found = api.get("/api/v1/links", OPERATOR_TOKEN, params={"q": "9"}).json()["items"]
            assert [f["link_id"] for f in found] == [link_id]

            # The timeline: the action with its actor, after the review that it resolved.
            entries = api.get(f"/api/v1/links/{link_id}/timeline", OPERATOR_TOKEN).json()["items"]
            actions = [e for e in entries if e["kind"] == "action"]
            assert [a["action_id"] for a in actions] == [action_id]
            assert actions[0]["actor"] == "alice" and actions[0]["status"] == "applied"
            assert actions[0]["action_kind"] == "LINK_TO_CANDIDATE"
            assert actions[0]["why"].startswith("same phone")
            review = [e for e in entries if e["kind"] == "review"]
            assert {e["event"] for e in review} == {"opened", "resolved"}
            reader = api.get(f"/api/v1/links/{link_id}/timeline", READER_TOKEN).json()["items"]
            assert all("why" not in e for e in reader)

            # The same request again: the same action, applied once.
            again = api.post("/api/v1/actions", OPERATOR_TOKEN, json=body)
            assert again.json()["action_id"] == action_id
            h.sent += 1
            h.drain()
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM mapper_history WHERE event_id = %s", (action_id,)
            ).fetchone()
            audit = conn.execute(
                "SELECT count(*) FROM mapper_operator_actions WHERE action_id = %s", (action_id,)
            ).fetchone()
        assert rows == (1,) and audit == (1,)

"""Explain: "why is record X (not) synced?" over HTTP (the mapper's port) and the CLI."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.mapper import explain

from .support import (
    Harness,
    employee,
    harness,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

pytestmark = pytest.mark.integration


def build_state(h: Harness) -> None:
    """Employee 1 linked to contact c-1; employee 9 matches two contacts (review)."""
    h.send_change(wix_event(wix_contact("c-1", email="ola@example.no", phone="+4791234567"), ts(1)))
    h.send_change(wix_event(wix_contact("c-a", first="A", phone="+4798765432"), ts(1)))
    h.send_change(wix_event(wix_contact("c-b", first="B", phone="98765432"), ts(1)))
    h.drain()
    h.send_change(po_event("employees", employee(1, email="ola@example.no"), ts(2)))
    h.send_change(po_event("employees", employee(9, phone="987 65 432"), ts(2)))
    h.drain()


def test_explain_over_http_and_cli(
    kafka_bootstrap: str,
    topic_prefix: str,
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as h:
        h.start()
        port, metrics_port = h.serve_http()
        build_state(h)
        url = f"http://127.0.0.1:{port}/explain"

        linked = httpx.get(
            url, params={"system": "poweroffice", "resource": "employees", "id": "1"}
        )
        assert linked.status_code == 200
        body = linked.json()
        assert body["status"] == "linked"
        members = {m["key"]: m for m in body["link"]["members"]}
        assert set(members) == {"poweroffice:employees:1", "wix:contacts:c-1"}
        # No authentication on this route: property names, never values (issue 13).
        assert members["wix:contacts:c-1"]["observed"]["properties"] == [
            "email",
            "first_name",
            "last_name",
            "phone",
        ]
        assert "props" not in members["poweroffice:employees:1"]["observed"]
        assert "first_name" in body["observed"]["properties"]
        for personal in ("ola@example.no", "Ola", "912 34 567", "91234567"):
            assert personal not in linked.text
        assert body["history"][0]["decision"] == "linked"
        assert body["pending_commands"] == [] and body["review_items"] == []

        review = httpx.get(
            url, params={"system": "poweroffice", "resource": "employees", "id": "9"}
        )
        assert review.status_code == 200
        body = review.json()
        assert body["status"] == "in_review" and body["link"] is None
        [item] = body["review_items"]
        assert item["reason"] == "ambiguous_match" and sorted(item["candidates"]) == ["c-a", "c-b"]

        unknown = httpx.get(url, params={"system": "wix", "resource": "contacts", "id": "nope"})
        assert unknown.status_code == 404 and unknown.json()["status"] == "unknown"
        assert httpx.get(url, params={"system": "wix"}).status_code == 400
        posted = httpx.post(url, json={"system": "wix", "resource": "contacts", "id": "c-1"})
        assert posted.status_code == 200 and posted.json()["status"] == "linked"

        assert h.mapper is not None
        h.mapper._maintenance(force=True)  # gauges refresh periodically; now, for the test
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(
                httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            )
            for s in family.samples
        }
        linked_events = (("result", "linked"), ("source", "change"), ("system", "poweroffice"))
        assert samples[("tether_mapper_events_total", linked_events)] == 1
        tenant = ("tenant", h.mapper.settings.tenant)
        assert samples[("tether_mapper_links", (("state", "active"), tenant))] == 1
        reason = ("reason", "ambiguous_match")
        assert samples[("tether_mapper_review_items_open", (reason, tenant))] == 1
        assert samples[("tether_mapper_outbox_backlog", ())] == 0

        # The CLI reads PostgreSQL directly and prints the same answer as JSON.
        monkeypatch.setenv("TETHER_POSTGRES_DSN", h.dsn)
        monkeypatch.setenv("TETHER_SECRETS_DIR", str(tmp_path / "none"))
        answers = {}
        for record_id in ("1", "9", "404"):
            code = explain.main(
                ["--system", "poweroffice", "--resource", "employees", "--id", record_id]
            )
            out = capsys.readouterr().out
            assert h.dsn not in out
            answers[record_id] = (code, json.loads(out)["status"])
            if record_id == "1":  # the CLI's caller holds the database credentials: values
                member = json.loads(out)["link"]["members"]
                emails = {m["observed"]["props"].get("email") for m in member if m["observed"]}
                assert "ola@example.no" in emails
        assert answers == {
            "1": (0, "linked"),
            "9": (0, "in_review"),
            "404": (1, "unknown"),
        }
        assert explain.main(["--system", "wix", "--resource", "employees", "--id", "1"]) == 2


def test_the_explain_routes_connection_cannot_write(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explain request's session is read-only in PostgreSQL itself (psycopg's ``read_only``
    attribute does nothing on an autocommit connection: this write went through before)."""
    import psycopg

    from services.mapper import http

    def writing_explain(conn: Any, *_args: Any) -> dict[str, Any]:
        conn.execute("CREATE TABLE explain_wrote (x int)")
        return {"status": "linked"}

    monkeypatch.setattr(http, "explain_record", writing_explain)
    endpoint = http.ExplainEndpoint(lambda: pg_dsn, "default")
    status, _, body = endpoint.answer({"system": "poweroffice", "resource": "employees", "id": "1"})
    assert status == 503 and b"ReadOnlySqlTransaction" in body
    with psycopg.connect(pg_dsn) as conn:
        found = conn.execute("SELECT to_regclass('explain_wrote')").fetchone()
    assert found == (None,)

"""Migration 5: operator actions (audit, ignored records) and field-level history.

* ``mapper_operator_actions`` — one row per applied operator action (``action_id`` from the
  request's idempotency key): who, when, what, why, and the result (``applied`` or
  ``rejected: <why>``). A second delivery of the same action finds its row and does nothing.
  Never trimmed: it is the audit trail.
* ``mapper_ignored_records`` — records an operator chose never to sync (IGNORE_RECORD); their
  changes are skipped with the decision ``ignored`` until UNIGNORE_RECORD removes the row.
* ``mapper_history`` gains ``fields`` (property -> ``{"before", "after"}`` of what a decision
  changed, ``services.mapper.domain.timeline``), ``actor`` and ``action_kind`` (the operator
  action a row records). ``fields`` holds personal data: only the authenticated console reads it.

Imports: nothing.
"""

VERSION = 5
NAME = "operator_actions"

SQL = """
CREATE TABLE mapper_operator_actions (
    action_id   text PRIMARY KEY,
    tenant      text NOT NULL,
    kind        text NOT NULL,
    actor       text NOT NULL,
    role        text NOT NULL,
    reason      text NOT NULL,
    at          timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL,
    status      text NOT NULL,
    result      text NOT NULL,
    detail      text NOT NULL,
    link_id     text,
    review_id   text,
    system      text,
    resource    text,
    record_id   text,
    contact_id  text,
    command_ids jsonb NOT NULL DEFAULT '[]',
    action      jsonb NOT NULL
);
CREATE INDEX mapper_operator_actions_link ON mapper_operator_actions (link_id, applied_at);
CREATE INDEX mapper_operator_actions_review ON mapper_operator_actions (review_id);
CREATE INDEX mapper_operator_actions_recent ON mapper_operator_actions (tenant, applied_at DESC);

CREATE TABLE mapper_ignored_records (
    tenant    text NOT NULL,
    system    text NOT NULL,
    resource  text NOT NULL,
    record_id text NOT NULL,
    action_id text NOT NULL,
    actor     text NOT NULL,
    at        timestamptz NOT NULL,
    PRIMARY KEY (tenant, system, resource, record_id)
);

ALTER TABLE mapper_history
    ADD COLUMN fields jsonb,
    ADD COLUMN actor text,
    ADD COLUMN action_kind text;
"""

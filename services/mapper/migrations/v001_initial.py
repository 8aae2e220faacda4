"""Migration 1: the mapper's whole state (links, indexes, positions, outbox, read model).

SQL lives in a Python constant (not a ``.sql`` file) so that it ships in the wheel the Docker
image installs. Never edit a released migration: add ``v002_...`` instead.

Imports: nothing.
"""

VERSION = 1
NAME = "initial"

SQL = """
-- Links: one row per link; ``state`` is the domain's Link document (Link.model_dump(mode="json")).
CREATE TABLE mapper_links (
    link_id        text PRIMARY KEY,
    tenant         text NOT NULL,
    status         text NOT NULL,
    wix_contact_id text,
    version        bigint NOT NULL,
    state          jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
-- A Wix contact belongs to at most one live link per tenant.
CREATE UNIQUE INDEX mapper_links_wix_contact ON mapper_links (tenant, wix_contact_id)
    WHERE wix_contact_id IS NOT NULL AND status <> 'merged';

-- Record identity -> link (from Link.member_refs(); a record belongs to one link).
CREATE TABLE mapper_link_members (
    tenant    text NOT NULL,
    system    text NOT NULL,
    resource  text NOT NULL,
    record_id text NOT NULL,
    link_id   text NOT NULL REFERENCES mapper_links (link_id),
    PRIMARY KEY (tenant, system, resource, record_id)
);
CREATE INDEX mapper_link_members_link ON mapper_link_members (link_id);

-- Match keys of live links (link_match_keys(link)): the keys of the contact they hold or are
-- creating, and those of their PowerOffice members (e.g. an employee's unsynced e-mail).
CREATE TABLE mapper_link_keys (
    tenant  text NOT NULL,
    kind    text NOT NULL,
    value   text NOT NULL,
    link_id text NOT NULL REFERENCES mapper_links (link_id),
    PRIMARY KEY (tenant, kind, value, link_id)
);
CREATE INDEX mapper_link_keys_link ON mapper_link_keys (link_id);

-- The Wix contact index (ContactIndexEntry) plus the full last-known contact for the loader.
-- ``deleted`` rows are tombstones: a late, older upsert never resurrects a deleted contact.
CREATE TABLE mapper_contacts (
    tenant          text NOT NULL,
    contact_id      text NOT NULL,
    props           jsonb NOT NULL DEFAULT '{}',
    revision        bigint,
    source_ts       timestamptz,
    has_other_items boolean NOT NULL DEFAULT false,
    record          jsonb,
    deleted         boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant, contact_id)
);
CREATE TABLE mapper_contact_keys (
    tenant     text NOT NULL,
    kind       text NOT NULL,
    value      text NOT NULL,
    contact_id text NOT NULL,
    PRIMARY KEY (tenant, kind, value, contact_id),
    FOREIGN KEY (tenant, contact_id) REFERENCES mapper_contacts (tenant, contact_id)
        ON DELETE CASCADE
);
CREATE INDEX mapper_contact_keys_contact ON mapper_contact_keys (tenant, contact_id);

-- Last observed full PowerOffice records (the loader's ``target_record``).
CREATE TABLE mapper_records (
    tenant     text NOT NULL,
    system     text NOT NULL,
    resource   text NOT NULL,
    record_id  text NOT NULL,
    record     jsonb NOT NULL,
    source_ts  timestamptz,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, system, resource, record_id)
);

-- Consumed positions (tracking rows): written in the same transaction as the effects.
CREATE TABLE mapper_positions (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

-- The command outbox: encoded Avro Commands, produced after commit, then marked.
CREATE TABLE mapper_outbox (
    seq             bigserial PRIMARY KEY,
    command_id      text NOT NULL UNIQUE,
    tenant          text NOT NULL,
    link_id         text NOT NULL,
    target_system   text NOT NULL,
    target_resource text NOT NULL,
    target_id       text,
    action          text NOT NULL,
    caused_by       text NOT NULL,
    topic           text NOT NULL,
    key             bytea NOT NULL,
    payload         bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    produced_at     timestamptz
);
CREATE INDEX mapper_outbox_unproduced ON mapper_outbox (seq) WHERE produced_at IS NULL;
CREATE INDEX mapper_outbox_link ON mapper_outbox (link_id, seq);
CREATE INDEX mapper_outbox_deletes ON mapper_outbox (created_at) WHERE action = 'delete';

CREATE TABLE mapper_conflicts (
    conflict_id text PRIMARY KEY,
    tenant      text NOT NULL,
    link_id     text NOT NULL,
    property    text NOT NULL,
    kind        text NOT NULL,
    rule        text NOT NULL,
    winner      jsonb NOT NULL,
    losers      jsonb NOT NULL,
    cause       text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX mapper_conflicts_link ON mapper_conflicts (link_id, at);

CREATE TABLE mapper_review_items (
    review_id   text PRIMARY KEY,
    tenant      text NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL,
    system      text,
    resource    text,
    record_id   text,
    link_id     text,
    property    text,
    candidates  jsonb NOT NULL DEFAULT '[]',
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    resolved_at timestamptz,
    resolution  text
);
CREATE INDEX mapper_review_items_record
    ON mapper_review_items (tenant, system, resource, record_id);
CREATE INDEX mapper_review_items_link ON mapper_review_items (link_id);
CREATE INDEX mapper_review_items_open ON mapper_review_items (reason) WHERE resolved_at IS NULL;

-- A short per-link / per-record history of decisions, outcomes and errors (explainability).
CREATE TABLE mapper_history (
    id            bigserial PRIMARY KEY,
    tenant        text NOT NULL,
    link_id       text,
    system        text,
    resource      text,
    record_id     text,
    source        text NOT NULL,
    event_id      text,
    command_id    text,
    decision      text NOT NULL,
    reason        text,
    commands      integer NOT NULL DEFAULT 0,
    error_code    text,
    error_message text,
    at            timestamptz NOT NULL
);
CREATE INDEX mapper_history_link ON mapper_history (link_id, id);
CREATE INDEX mapper_history_record ON mapper_history (tenant, system, resource, record_id, id);
"""

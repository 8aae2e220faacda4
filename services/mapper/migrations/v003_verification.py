"""Migration 3: the verification read model — one row per link, written by ``tether verify``.

``mapper_verification`` holds the latest verdict of the continuous verification
(``services/verify``, ``docs/verification.md``) for every active link it checked: ``status``
(``agree``, ``divergent``, ``repairing``, ``in_review``, ``in_flux``, ``missing``), the names of
the divergent properties (never their values: those stay in the link state), a one-line
``detail``, the repair change events it emitted and since when the link has been divergent.
``tether explain`` / ``GET /explain`` show the row of the record's link. The verifier is the only
writer; the mapper itself only reads it.

Imports: nothing.
"""

VERSION = 3
NAME = "verification"

SQL = """
CREATE TABLE mapper_verification (
    link_id            text PRIMARY KEY,
    tenant             text NOT NULL,
    flow               text NOT NULL,
    status             text NOT NULL,
    properties         text[] NOT NULL DEFAULT '{}',
    detail             text NOT NULL,
    repairs            jsonb NOT NULL DEFAULT '[]',
    cycle_id           text NOT NULL,
    divergent_since    timestamptz,
    verified_at        timestamptz NOT NULL
);
CREATE INDEX mapper_verification_status ON mapper_verification (tenant, status);
"""

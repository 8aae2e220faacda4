"""Migration 6: indexes for the operator console's read model (``services/console``).

Measured with 100,000 links (bench/console.py; docs/console.md "Performance") — without them a
name search, a list filtered by state and the overview's in-flight/failed counts each scan every
link document (0.3 to 1 s); with them they read an index:

* ``mapper_links_name_trgm`` — trigram GIN index on the link's agreed "first last" name, lower-
  cased (the console's ``readmodel.NAME_EXPR``; keep the two identical): a substring search
  (``LIKE '%nordm%'``) uses it. Needs the ``pg_trgm`` extension (trusted since PostgreSQL 13: the
  database owner may create it). Where it cannot be created (no privilege, not installed) the
  migration still succeeds without this index and the search falls back to a scan;
* ``mapper_links_status`` — ``(tenant, status, link_id)``: lists filtered by state, and the
  counts by state as an index-only scan;
* ``mapper_links_in_flight`` / ``mapper_links_failed`` — indexes on "has a write in flight" /
  "has a member whose last write failed" (expression indexes, whose statistics tell the planner
  how few links match);
* ``mapper_review_items_recent`` and ``mapper_conflicts_recent`` — the lists' keyset order.

Cost on the mapper's write path: an index over an expression of ``state`` means a link update
is no longer a HOT update; measured in docs/console.md.

Imports: nothing.
"""

VERSION = 6
NAME = "console_read_model"

SQL = """
DO $$
DECLARE
    trgm_schema text;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm not available (%): the console name search will scan', SQLERRM;
    END;
    -- The operator class is named with the extension's schema: the extension may live in a
    -- schema that is not on this connection's search_path (``tether preview`` migrates a scratch
    -- schema with only itself on the path).
    SELECT extnamespace::regnamespace::text INTO trgm_schema
    FROM pg_extension WHERE extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format($idx$
            CREATE INDEX mapper_links_name_trgm ON mapper_links USING gin (
                (lower(coalesce(state->'base'->>'first_name', '') || ' ' ||
                       coalesce(state->'base'->>'last_name', ''))) %s.gin_trgm_ops)
        $idx$, trgm_schema);
    END IF;
END
$$;
CREATE INDEX mapper_links_status ON mapper_links (tenant, status, link_id);
-- Expression indexes (not partial ones): ANALYZE keeps statistics of an index's expression, so the
-- planner knows how few links match and reads the index instead of every link document.
CREATE INDEX mapper_links_in_flight
    ON mapper_links ((jsonb_path_exists(state, '$.members[*] ? (@.pending != null)')));
CREATE INDEX mapper_links_failed
    ON mapper_links ((jsonb_path_exists(state, '$.members[*] ? (@.last_error != null)')));
CREATE INDEX mapper_review_items_recent
    ON mapper_review_items (tenant, last_seen DESC, review_id DESC);
CREATE INDEX mapper_conflicts_recent ON mapper_conflicts (tenant, at DESC, conflict_id DESC);
"""

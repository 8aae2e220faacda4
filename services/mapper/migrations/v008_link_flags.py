"""Migration 8: the console's link filters on narrow columns, so a link update can be HOT.

Migration 6 indexed three expressions of the link document ``state`` (the agreed name for the
trigram search, "has a write in flight", "has a failed write"). An index over an expression of
``state`` makes every link update — and the mapper changes ``state`` in every one — a non-HOT
update: a new heap tuple on another page and a new entry in every index of ``mapper_links``,
the trigram GIN index included (issue 12). Now:

* ``search_name``, ``in_flight`` and ``failed`` are stored generated columns computed by
  PostgreSQL from ``state`` with migration 6's expressions (nothing else writes them; the
  console reads them: ``services/console/readmodel.py``), and the three indexes are rebuilt on
  those columns — ``in_flight``/``failed`` as partial indexes (``WHERE in_flight``), which hold
  only the few links that match and whose statistics ANALYZE keeps as a column's;
* an update changes an indexed column only when the name, the in-flight or the failed flag
  changes (HOT otherwise), and ``fillfactor = 80`` leaves room on each page for the new
  version of its links (set before the columns are added, so the rewrite applies it).

Adding stored columns rewrites the table once, under an ``ACCESS EXCLUSIVE`` lock for its
duration (3.6 s for 100,000 links, 157 MB -> 169 MB with its indexes, on the shared 2-core
development machine under load): existing rows are kept and their columns computed. Run the
migrate Job in a quiet moment for large tables.

Imports: nothing.
"""

VERSION = 8
NAME = "link_flags"

SQL = """
DROP INDEX IF EXISTS mapper_links_name_trgm;
DROP INDEX IF EXISTS mapper_links_in_flight;
DROP INDEX IF EXISTS mapper_links_failed;
ALTER TABLE mapper_links SET (fillfactor = 80);
ALTER TABLE mapper_links
    ADD COLUMN search_name text GENERATED ALWAYS AS (
        lower(coalesce(state->'base'->>'first_name', '') || ' ' ||
              coalesce(state->'base'->>'last_name', ''))) STORED,
    ADD COLUMN in_flight boolean GENERATED ALWAYS AS (
        jsonb_path_exists(state, '$.members[*] ? (@.pending != null)')) STORED,
    ADD COLUMN failed boolean GENERATED ALWAYS AS (
        jsonb_path_exists(state, '$.members[*] ? (@.last_error != null)')) STORED;
CREATE INDEX mapper_links_in_flight ON mapper_links (tenant) WHERE in_flight;
CREATE INDEX mapper_links_failed ON mapper_links (tenant) WHERE failed;
DO $$
DECLARE
    trgm_schema text;
BEGIN
    -- As in migration 6: the operator class is named with pg_trgm's schema; without the
    -- extension the name search scans.
    SELECT extnamespace::regnamespace::text INTO trgm_schema
    FROM pg_extension WHERE extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX mapper_links_name_trgm ON mapper_links USING gin '
            '(search_name %s.gin_trgm_ops)', trgm_schema);
    END IF;
END
$$;
"""

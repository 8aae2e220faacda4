"""Migration 7: the link's hub is a role — column ``wix_contact_id`` becomes ``hub_record_id``.

A link is hub-and-spoke (DESIGN.md "Connectors, dataflows and tenants"): one hub record (with the
default dataflow, the Wix contact) and member records. The column holding the hub record's id,
and the unique index that keeps one hub record in at most one live link per tenant, are renamed
after the role instead of the system:

* column ``wix_contact_id`` -> ``hub_record_id`` (same type, same values);
* index ``mapper_links_wix_contact`` -> ``mapper_links_hub_record`` (same definition: PostgreSQL
  rewrites an index's expression and predicate with the column's new name).

Both are catalogue changes: no row is rewritten and no index rebuilt, so a deployment with
millions of links upgrades in place within the migration's brief ``ACCESS EXCLUSIVE`` lock
(tests/mapper/test_migrations.py migrates rows written by the previous schema and reads them
back). A mapper or console of the previous release still running names the old column: its
statements fail once this migration committed, so stop them before migrating
(docs/operations.md "Upgrading to mapper migration 7").

Imports: nothing.
"""

VERSION = 7
NAME = "hub_role"

SQL = """
ALTER TABLE mapper_links RENAME COLUMN wix_contact_id TO hub_record_id;
ALTER INDEX mapper_links_wix_contact RENAME TO mapper_links_hub_record;
"""

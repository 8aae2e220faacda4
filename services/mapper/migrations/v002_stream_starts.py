"""Migration 2: when the mapper first saw each change stream (for change-to-target freshness).

``mapper_stream_starts`` holds, per ``(tenant, system, resource)``, the ``extracted_at`` of the
first ChangeEvent the mapper handled from that stream. A change whose source timestamp is older
was made before Tether watched the stream (the initial snapshot): its commands carry no
``cause_changed_at`` and so do not count against the freshness objective.

Imports: nothing.
"""

VERSION = 2
NAME = "stream_starts"

SQL = """
CREATE TABLE mapper_stream_starts (
    tenant             text NOT NULL,
    system             text NOT NULL,
    resource           text NOT NULL,
    first_extracted_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, system, resource)
);
"""

"""Migration 4: the trace context of each outbox row.

``mapper_outbox.traceparent`` holds the W3C ``traceparent`` of the mapper's span that decided
the command (``services/core/tracing.py``); the relay sends it as the command message's Kafka
header, so the loader's write continues the change's trace. NULL when tracing is off (and for
every row written before this migration): the command is then sent without headers.

Imports: nothing.
"""

VERSION = 4
NAME = "outbox_trace"

SQL = """
ALTER TABLE mapper_outbox ADD COLUMN traceparent text;
"""

"""``tether replay``: reprocess a stage from a time or an offset; re-drive dead letters.

Replayable stages are the ones that consume Kafka: the **mapper** (change topics + outcomes) and
the **loader** (command topics). The extractor reads the SaaS APIs, not Kafka, so it has nothing
to replay (its cursors are rewound with the APIs' own ``since`` parameters instead).

Modules:

- ``stages``      which topics and consumer group belong to a stage;
- ``plan``        the pure plan: per topic/partition the group's committed offset, the offset the
                  replay starts from, the end offset and the message count; text/JSON rendering;
- ``kafka_ops``   the Kafka side: partitions, offsets (earliest/latest/by time), committed group
                  offsets, group membership, altering a group's offsets, reading a range;
- ``preview``     the mapper dry run: the mapper's own ``Handler`` run over the range against its
                  PostgreSQL state inside a transaction that is rolled back — the commands that
                  would result, with no side effects;
- ``deadletters`` list dead letters and re-drive their original bytes into their source topic;
- ``main``        the CLI.

The safe procedure (docs/operations.md, "Replay"): dry run, stop the stage (scale to 0), execute
(refused while the group has members), start the stage. Replay is safe by design: the mapper's
domain ignores stale and echoed changes and emits only commands that change a target, commands
carry deterministic ids the loader de-duplicates, and targets are written idempotently.
"""

"""The demo: the whole pipeline on the embedded default (local Kafka, PostgreSQL, simulators)."""

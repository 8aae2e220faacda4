"""The mapper service: link state in PostgreSQL, matching, two-way sync (``docs/mapper.md``).

Modules: ``domain`` (the pure rules, ``docs/mapping-rules.md``), ``convert`` (Avro <-> domain),
``store`` (PostgreSQL statements), ``migrations`` (versioned schema), ``handler`` (one input:
load, decide, persist), ``loop`` (poll -> persist -> produce -> commit), ``explain`` (the read
model and ``tether explain``), ``http`` (``/explain``), ``metrics``, ``settings`` and ``main``
(``tether mapper``).

The mapper must not import the other services (``services.extractor``, ``services.loader``);
import-linter checks it. This ``__init__`` imports nothing, so the pure domain stays importable
without Kafka or PostgreSQL.
"""

"""The loader service: applies commands to the target systems (the connectors ``clients`` wires)
within their rate budgets, idempotently, and reports one outcome per command (``docs/loader.md``).

Modules: ``plan`` (pure rules), ``offsets`` (pure commit bookkeeping), ``targets`` (a command
against one system's connector targets), ``executor`` (retries), ``workers`` (keyed thread
pool), ``completed`` (the de-duplication index read from the outcomes topic), ``messages`` (Avro
in/out), ``metrics``, ``clients`` (the connectors wired), ``settings``, ``service`` (the loop)
and ``main`` (``tether loader``).

The loader must not import the other services (``services.mapper``, ``services.extractor``);
import-linter checks it. This package's ``__init__`` imports nothing, so the pure modules stay
importable without Kafka or HTTP libraries.
"""

"""The mapper service: link state in PostgreSQL, matching, two-way sync (``docs/mapper.md``).

Modules: ``domain`` (the pure rules, ``docs/mapping-rules.md``), ``convert`` (Avro <-> domain),
``store`` (PostgreSQL statements), ``migrations`` (versioned schema), ``handler`` (one input:
load, decide, persist), ``loop`` (poll -> persist -> produce -> commit), ``explain`` (the read
model and ``tether explain``), ``http`` (``/explain``), ``metrics``, ``settings`` and ``main``
(``tether mapper``).

``wiring`` registers the systems a dataflow may name, with the field accessors of the hub's
records; ``dataflow_file`` reads a dataflow file.

The mapper must not import the other services (``services.extractor``, ``services.loader``);
import-linter checks it. This ``__init__`` installs the shipped default dataflow, so that every
user of the domain (tests, the verifier, the console, benchmarks) reads the registries the
mapper starts with; it imports no I/O library, so the pure domain stays importable without Kafka
or PostgreSQL.
"""

# After the docstring and last: the modules it imports import ``services.mapper.domain``, whose
# parent package (this one) must already be in ``sys.modules``.
from services.mapper.dataflow_file import install_shipped_dataflow

install_shipped_dataflow()

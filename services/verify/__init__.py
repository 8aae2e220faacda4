"""Continuous verification (anti-entropy): compare both systems for every link, repair through the
pipeline.

``tether verify`` runs one cycle: read every record of both systems with the production clients
within this process's share of each API budget, load the mapper's links from PostgreSQL (read
only), compare each link's mapped values by the mapper's own rules (``compare``), emit a change
event with the current state of every side the mapper has not seen as it is (``events``: the
mapper merges and writes the side that is behind), record a verdict per link
(``mapper_verification``, shown by ``tether explain``) and export ``tether_links_divergent``.
``tether verify --loop`` repeats it as a service (``/metrics``, ``/readyz``).

Modules: ``compare`` and ``events`` are pure; ``reading`` (API clients), ``store`` (PostgreSQL),
``metrics``, ``cycle`` (one cycle) and ``main`` (CLI / service) do the I/O. This package imports
the mapper's pure domain only — never the mapper's, extractor's or loader's service modules
(import-linter contract in ``pyproject.toml``). See ``docs/verification.md``.
"""

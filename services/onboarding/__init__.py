"""First run against real accounts: ``tether doctor`` and ``tether preview`` (docs/first-run.md).

- ``checks``: the pure half — a check result (OK / WARN / FAIL with a one-line fix), the rules that
  turn measurements (token lifetime, Date headers, rate-limit headers, API errors) into results.
- ``wiring``: builds the production API clients from the services' own settings, with an
  observing HTTP transport that records what the doctor needs (Date and rate-limit headers, the
  token lifetime) without changing a single request.
- ``doctor``: credentials, token renewal, permissions (incl. Wix extended fields), webhook
  set-up, clock skew and rate limits, each a check.
- ``preview``: reads both systems in full with the production clients and runs the mapper's own
  handler against a scratch PostgreSQL schema: what the first real run would do.

This package sits above the services, like ``services.cli``: it may import the extractor's pure
change builders, the mapper's handler/store/migrations and the loader's settings. No service
imports it (import-linter contract in pyproject.toml).
"""

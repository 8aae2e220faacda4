"""The operator console: a read model, an authenticated JSON API and server-rendered pages.

One process (``tether console``) serves, on its own port (``console_port``):

* ``/api/v1/...`` — the JSON API (``services.console.api``): overview, lists (review items,
  conflicts, dead letters, links), one link with its timeline, and the operator actions, which
  are published as ``OperatorAction`` events the mapper applies (DESIGN.md "Operators act
  through events"); the CLI (``tether review|links|deadletters``) is a client of it;
* ``/`` and ``/ui/...`` — the web console (``services.console.web``): Jinja2 templates, a small
  stylesheet, forms with a confirmation step and CSRF tokens; no JavaScript build.

``/metrics``, ``/healthz`` and ``/readyz`` are on the operations port (``http_port``) as for every
service. Modules:

- ``settings``  ``ConsoleSettings`` (``TETHER_CONSOLE_*``);
- ``auth``      identities, roles, token and JWT verifiers, rate limiting, CSRF/session tokens;
- ``readmodel`` SQL over the mapper's PostgreSQL tables (keyset pagination), pure row shaping;
- ``privacy``   what a read-only caller may see (counts and ids, never names/e-mails/phones);
- ``kafkaview`` what only Kafka knows: dead letters, consumer lag, last poll per source;
- ``actions``   validating an operator's request and publishing it; reading its result;
- ``api``/``web`` the HTTP surfaces; ``app`` builds the Starlette application;
- ``client``    the CLI commands that call the API; ``main`` the service entry point.

The console imports ``services.core``, the replay tool's dead-letter helpers and the mapper's
pure domain only (never the extractor, the loader or the mapper's store/loop): it reads the
mapper's tables with its own SQL and changes nothing in them — every change is an event.
"""

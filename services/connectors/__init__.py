"""SaaS API connectors: per system a production HTTP client and a local simulator of the API.

``poweroffice/`` and ``wix/`` each hold ``client.py`` (what runs in production; follows
``shared/reference``), ``models.py`` (typed records that keep unknown fields) and ``simulator.py``
(a faithful local stand-in used by the demo and the tests). ``simkit.py`` holds what both
simulators share (threaded server, fault injection, server-side rate limits).

Clients must never import simulator code; simulators may import models.
"""

"""Tenants as data: the registry of the tenants one deployment serves (issue 16).

``model`` (pure rules), ``credentials`` (secrets from a reference), ``registry`` (the compacted
topics), ``overrides`` (which service settings a tenant may override), ``cli``
(``tether tenants``; the console's ``/api/v1/tenants`` is the other writer). The services read
the registry through ``registry``; no service imports ``cli``.
"""

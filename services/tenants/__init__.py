"""Tenants as data: the registry of the tenants one deployment serves (issue 16).

``model`` (pure rules), ``credentials`` (secrets from a reference), ``registry`` (the compacted
topics), ``cli`` (``tether tenants``). The services read the registry through ``registry``; no
service imports ``cli``.
"""

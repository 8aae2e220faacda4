"""Code shared by the Tether services, one module per concern.

Modules here must not import from ``services.extractor``, ``services.mapper`` or
``services.loader`` (checked by import-linter).
"""

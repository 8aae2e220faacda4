"""The mapper service: link state in PostgreSQL, matching, two-way mapping, merge."""

"""Tests of the loader service."""

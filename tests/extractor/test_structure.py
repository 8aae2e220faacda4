"""The extractor's pure modules import no I/O library; settings build budgets and read keys."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import services.connectors as connectors_package
import services.core as core_package
import services.extractor as extractor_package
from services.extractor.settings import ExtractorSettings, budget_shape
from tests.support.imports import disallowed_imports

PURE = ("changes.py", "known.py", "reconciliation.py", "dedup.py", "tenancy.py")
ALLOWED_FIRST_PARTY = (
    "services.extractor.changes",
    "services.extractor.known",
    "services.extractor.reconciliation",
    "services.core.connector",  # the interface's types (dataclasses, protocols)
    "services.core.contract",  # the Avro contract enums (standard library only)
    "services.core.errors",
    "services.core.records",
    "services.core.stream_positions",
    "services.core.topics",
    "services.tenants.model",  # the registration's values and rules (pydantic only)
)
CURSORS = ("poweroffice/cursor.py", "wix/cursor.py")
"""The streams' cursor arithmetic (pure, tested in test_positions.py)."""


def test_pure_modules_import_only_the_standard_library_and_pure_modules() -> None:
    package = Path(extractor_package.__file__).parent
    offenders = disallowed_imports(
        [package / name for name in PURE], first_party=ALLOWED_FIRST_PARTY
    )
    assert offenders == []
    for name in PURE:
        docstring = ast.get_docstring(ast.parse((package / name).read_text())) or ""
        assert "imports no I/O library" in docstring, name


def test_the_streams_cursor_arithmetic_is_pure() -> None:
    connectors = Path(connectors_package.__file__).parent
    core = Path(core_package.__file__).parent
    offenders = disallowed_imports(
        [core / "stream_positions.py", *(connectors / name for name in CURSORS)],
        first_party=("services.core.connector", "services.core.stream_positions"),
    )
    assert offenders == []


def test_every_module_says_what_it_is_for() -> None:
    package = Path(extractor_package.__file__).parent
    for path in sorted(package.glob("*.py")):
        if path.name != "__init__.py":
            assert ast.get_docstring(ast.parse(path.read_text())), path.name


def test_budget_shares_keep_their_average_rate() -> None:
    assert budget_shape(10 * 0.5, 1.0) == (5, 1.0)
    assert budget_shape(200 * 0.5, 60.0) == (100, 60.0)
    assert budget_shape(2.5, 1.0) == (2, 0.8)
    assert budget_shape(0.5, 1.0) == (1, 2.0)
    assert budget_shape(0, 1.0) == (0, 1.0)  # lifted


def test_webhook_key_from_environment_secret_file_or_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----"
    monkeypatch.delenv("TETHER_WIX_WEBHOOK_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("TETHER_SECRETS_DIR", str(tmp_path / "none"))
    assert ExtractorSettings.load().webhook_public_key_pem() is None
    (tmp_path / "key.pem").write_text(pem + "\n")
    monkeypatch.setenv("TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE", str(tmp_path / "key.pem"))
    assert ExtractorSettings.load().webhook_public_key_pem() == pem
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "tether_wix_webhook_public_key").write_text("inline")
    monkeypatch.setenv("TETHER_SECRETS_DIR", str(secrets))
    settings = ExtractorSettings.load()
    assert settings.webhook_public_key_pem() == "inline"
    assert "inline" not in repr(settings)
    assert settings.http_port == 9100

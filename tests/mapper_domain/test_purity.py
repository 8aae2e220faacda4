"""The domain core imports nothing that performs I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import services.mapper.domain as domain
from tests.support.imports import disallowed_imports

ALLOWED_THIRD_PARTY = {"pydantic", "phonenumbers"}
ALLOWED_FIRST_PARTY = (
    "services.mapper.domain",
    "services.core.errors",
    "services.core.operator_actions",
)


def test_domain_imports_only_stdlib_pydantic_phonenumbers_and_itself() -> None:
    package = Path(domain.__file__).parent
    offenders = disallowed_imports(
        sorted(package.glob("*.py")),
        third_party=ALLOWED_THIRD_PARTY,
        first_party=ALLOWED_FIRST_PARTY,
    )
    assert offenders == []


def test_every_domain_module_documents_its_purpose_and_purity() -> None:
    package = Path(domain.__file__).parent
    for path in sorted(package.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert docstring, path.name
        if path.name != "__init__.py":
            assert "imports no I/O library" in docstring, path.name

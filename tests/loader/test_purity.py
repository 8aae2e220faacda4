"""The loader's pure modules import no I/O library; every module documents itself."""

from __future__ import annotations

import ast
from pathlib import Path

import services.loader as loader
from tests.support.imports import disallowed_imports, imported_modules

PURE = ("plan.py", "offsets.py")
ALLOWED_THIRD_PARTY = {"phonenumbers"}
ALLOWED_FIRST_PARTY = (
    "services.loader.plan",
    "services.core.errors",
    "services.core.connector",
    "services.core.contract",
)


def test_pure_modules_import_only_stdlib_phonenumbers_and_core_errors() -> None:
    package = Path(loader.__file__).parent
    offenders = disallowed_imports(
        [package / name for name in PURE],
        third_party=ALLOWED_THIRD_PARTY,
        first_party=ALLOWED_FIRST_PARTY,
    )
    assert offenders == []


def test_the_loader_never_imports_another_service() -> None:
    package = Path(loader.__file__).parent
    offenders = [
        f"{path.name}: {module}"
        for path in sorted(package.glob("*.py"))
        for module in imported_modules(path)
        if module.startswith(("services.mapper", "services.extractor", "services.demo"))
    ]
    assert offenders == []


def test_every_module_documents_its_purpose_and_imports() -> None:
    package = Path(loader.__file__).parent
    for path in sorted(package.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert docstring, path.name
        if path.name in PURE:
            assert "imports no I/O library" in docstring, path.name
        elif path.name != "__init__.py":
            assert "Imports:" in docstring, path.name

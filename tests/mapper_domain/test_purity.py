"""The domain core imports nothing that performs I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import services.mapper.domain as domain

ALLOWED_THIRD_PARTY = {"pydantic", "phonenumbers"}
ALLOWED_FIRST_PARTY = ("services.mapper.domain", "services.core.errors", "services.core.wix_items")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_domain_imports_only_stdlib_pydantic_phonenumbers_and_itself() -> None:
    package = Path(domain.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
                continue
            if module.startswith(ALLOWED_FIRST_PARTY):
                continue
            offenders.append(f"{path.name}: {module}")
    assert offenders == []


def test_every_domain_module_documents_its_purpose_and_purity() -> None:
    package = Path(domain.__file__).parent
    for path in sorted(package.glob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert docstring, path.name
        if path.name != "__init__.py":
            assert "imports no I/O library" in docstring, path.name


def test_the_shared_core_modules_are_pure() -> None:
    # What the pure core may borrow from services.core imports only the standard library.
    import services.core.wix_items as wix_items

    modules = imported_modules(Path(wix_items.__file__))
    assert all(m.split(".")[0] in sys.stdlib_module_names for m in modules), modules

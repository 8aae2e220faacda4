"""What a module imports, read from its source (the purity tests of the pure cores use it)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path


def imported_modules(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports are left out)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def disallowed_imports(
    paths: Iterable[Path],
    *,
    third_party: Iterable[str] = (),
    first_party: tuple[str, ...] = (),
) -> list[str]:
    """``"<file>: <module>"`` for every import outside the standard library, the allowed
    third-party packages and the allowed first-party module prefixes."""
    allowed = set(third_party)
    return [
        f"{path.name}: {module}"
        for path in paths
        for module in sorted(imported_modules(path))
        if module.split(".")[0] not in sys.stdlib_module_names
        and module.split(".")[0] not in allowed
        and not module.startswith(first_party)
    ]

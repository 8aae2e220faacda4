"""The core modules the pure cores may import (mapper domain, loader plan) are pure themselves."""

from __future__ import annotations

from pathlib import Path

import services.core.errors as errors
import services.core.wix_items as wix_items
from tests.support.imports import disallowed_imports


def test_the_core_modules_the_pure_cores_borrow_import_only_the_standard_library() -> None:
    paths = [Path(errors.__file__), Path(wix_items.__file__)]
    assert disallowed_imports(paths) == []

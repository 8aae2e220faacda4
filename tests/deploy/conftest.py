"""Fixtures for the deploy tests: the operations tools (promtool, prometheus).

scripts/install-ops-tools.sh installs Debian's ``prometheus`` package when a tool is missing; it
needs root, so a test that needs the tools is skipped only on a machine where they are missing
and the tests do not run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .manifests import ROOT


def _ops_tool(name: str) -> str:
    if shutil.which(name) is None:
        if os.geteuid() != 0:
            pytest.skip(f"{name} missing and not root: run scripts/install-ops-tools.sh as root")
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "install-ops-tools.sh")], check=True, timeout=900
        )
    path = shutil.which(name)
    assert path is not None, f"scripts/install-ops-tools.sh did not install {name}"
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _ops_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return _ops_tool("prometheus")

"""One private infrastructure with TLS for the security tests (``TETHER_INFRA_TLS=1``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.own_infra import OwnInfra


@pytest.fixture(scope="package")
def secure() -> Iterator[OwnInfra]:
    infra = OwnInfra.up(tls=True)
    try:
        yield infra
    finally:
        infra.down()


def tls_dir(infra: OwnInfra) -> Path:
    assert infra.values is not None
    return Path(infra.values["TETHER_INFRA_TLS_DIR"])

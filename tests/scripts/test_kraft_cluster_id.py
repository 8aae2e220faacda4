"""The KRaft cluster id ``scripts/infra.py`` formats storage with never starts with ``-``.

``kafka-storage format -t -O-WDR...`` failed ("argument --cluster-id/-t: expected one argument")
when the random id began with ``-`` (URL-safe base64 of a first byte 0xF8-0xFB: 1 start in 64).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

INFRA = Path(__file__).resolve().parents[2] / "scripts" / "infra.py"


def _infra() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tether_infra_script", INFRA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cluster_id_starting_with_a_dash_is_drawn_again() -> None:
    infra = _infra()
    draws: Iterator[bytes] = iter([bytes([0xF8]) + bytes(15), bytes([0x10]) + bytes(15)])
    cluster_id = infra.kraft_cluster_id(lambda: next(draws))
    assert cluster_id == "EAAAAAAAAAAAAAAAAAAAAA"
    assert len(infra.kraft_cluster_id()) == 22


def test_the_first_draw_is_kept_when_it_is_usable() -> None:
    infra = _infra()
    assert infra.kraft_cluster_id(lambda: bytes(16)) == "AAAAAAAAAAAAAAAAAAAAAA"

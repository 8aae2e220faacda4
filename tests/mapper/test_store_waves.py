"""``store.split_waves`` (pure): how ``BatchStore`` cuts a run of one per-row statement into
set-based statements without changing what the rows do.

A row's key never appears twice in one wave (an ``ON CONFLICT DO UPDATE`` may touch a row once
per statement), each key's rows keep their order across waves, and a run without repeated keys
is one wave in its original order.
"""

from __future__ import annotations

from services.mapper.store.batch import split_waves


def test_a_run_without_repeated_keys_is_one_wave_in_order() -> None:
    rows = [("c", 1), ("a", 2), ("b", 3)]
    assert split_waves(rows, lambda r: r[0]) == [rows]


def test_a_repeated_key_goes_to_the_next_wave_in_its_order() -> None:
    rows = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)]
    waves = split_waves(rows, lambda r: r[0])
    assert waves == [
        [("a", 1), ("b", 1), ("c", 1)],
        [("a", 2), ("b", 2)],
        [("a", 3)],
    ]
    for wave in waves:
        keys = [key for key, _ in wave]
        assert len(keys) == len(set(keys))
    flattened = [row for wave in waves for row in wave]
    for key in "abc":
        assert [n for k, n in flattened if k == key] == [n for k, n in rows if k == key]


def test_no_rows_no_waves() -> None:
    assert split_waves([], lambda r: r) == []

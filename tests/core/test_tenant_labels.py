"""Bounded tenant label values (pure): the first ``cap`` tenants own theirs, the rest share one."""

from __future__ import annotations

import threading

import pytest

from services.core.tenant_labels import OTHER, TenantLabels


def test_the_first_tenants_up_to_the_cap_keep_their_own_label_the_others_share_one() -> None:
    labels = TenantLabels(cap=2)
    assert [labels.label(t) for t in ("b", "a", "c", "b", "d", "a")] == [
        "b",
        "a",
        OTHER,
        "b",
        OTHER,
        "a",
    ]


def test_a_tenant_named_like_the_shared_label_never_takes_a_slot() -> None:
    labels = TenantLabels(cap=1)
    assert labels.label(OTHER) == OTHER
    assert labels.label("acme") == "acme"


def test_counts_beyond_the_cap_are_summed_into_other_and_labels_are_assigned_by_id() -> None:
    labels = TenantLabels(cap=2)
    counts = {
        ("gamma", "active"): 5,
        ("alpha", "active"): 1,
        ("beta", "active"): 2,
        ("delta", "error"): 3,
        ("gamma", "error"): 4,
    }
    assert labels.sum_by_label(counts) == {
        ("alpha", "active"): 1,
        ("beta", "active"): 2,
        (OTHER, "active"): 5,
        (OTHER, "error"): 7,
    }
    # a label once given is kept: gamma stays in _other even when fewer tenants remain
    assert labels.sum_by_label({("gamma", "active"): 1}) == {(OTHER, "active"): 1}


def test_concurrent_callers_never_give_more_than_cap_tenants_their_own_label() -> None:
    labels = TenantLabels(cap=10)
    start = threading.Barrier(8)
    given: list[set[str]] = [set() for _ in range(8)]

    def work(worker: int) -> None:
        start.wait()
        for n in range(200):
            given[worker].add(labels.label(f"t{worker}-{n}"))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    own = set().union(*given) - {OTHER}
    assert len(own) == 10
    assert all(labels.label(tenant) == tenant for tenant in own)


def test_the_cap_is_at_least_one() -> None:
    with pytest.raises(ValueError):
        TenantLabels(cap=0)

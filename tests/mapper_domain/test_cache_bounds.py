"""The mapper domain's memo caches are bounded in memory, not only in entries: full, they fit
a small slice of the 200 MiB a service may use (issue 12: peak RSS per service < 200 MiB at 100k
links; at 65,536 entries each the three caches alone took 63 MiB, a third of the budget).

The caches are filled to their ``maxsize`` with distinct realistic values (phones, e-mails,
link ids) and the memory they hold is measured with ``tracemalloc`` — a size, not a timing."""

from __future__ import annotations

import gc
import tracemalloc

from services.mapper.domain import identity, normalize
from services.mapper.domain.normalize import ValueKind

#: What the full caches together may hold.
BUDGET_MIB = 24.0


def fill_all() -> None:
    for i in range(normalize.PHONE_CACHE_SIZE):
        normalize.phone_e164(f"+47 9{i:07d}")
    for i in range(normalize.PHONE_CACHE_SIZE):
        normalize.compare_key(ValueKind.EMAIL, f"person.number{i}@example.no")
    for i in range(identity.ID_CACHE_SIZE):
        identity.derive_id("link", "default", "poweroffice", "customers", str(100_000_000 + i))


def test_the_full_memo_caches_fit_their_budget() -> None:
    caches = (normalize._phone_forms, normalize.compare_key, identity._derive_cached)
    for cache in caches:
        cache.cache_clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fill_all()
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - before) / 2**20
    finally:
        tracemalloc.stop()
        for cache in caches:
            cache.cache_clear()
    assert all(c.cache_info().maxsize for c in caches), "every cache must have a bound"
    assert held <= BUDGET_MIB, f"full memo caches hold {held:.1f} MiB (budget {BUDGET_MIB})"

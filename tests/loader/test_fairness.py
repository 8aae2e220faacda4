"""The loader's scheduling and tenant rules, without threads: ``FairQueue`` and ``admit``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.errors import (
    AuthenticationError,
    ConfigurationError,
    ServerError,
    ValidationError,
)
from services.loader.admission import (
    TENANT_REMOVED,
    TENANT_UNKNOWN,
    Admission,
    TenantNotServedError,
    Verdict,
    admit,
    tenant_health,
)
from services.loader.fairness import Claim, FairQueue, ReadShares
from services.loader.plan import Result, Status, failure
from services.tenants.model import Tenant


def drain(queue: FairQueue[str], runnable: set[str] | None = None) -> list[str]:
    """Pop and finish one job at a time until nothing may run."""
    served: list[str] = []
    while True:
        claim = queue.pop(lambda t: runnable is None or t in runnable)
        if claim is None:
            return served
        served.append(claim.job)
        queue.done(claim)


def test_a_tenants_backlog_gets_one_turn_like_a_tenant_with_one_command() -> None:
    queue: FairQueue[str] = FairQueue(max_running_per_tenant=4)
    for i in range(100):
        queue.push("big", f"big-link-{i}", f"big-{i}")
    queue.push("small", "s1", "small-0")
    queue.push("small", "s2", "small-1")
    queue.push("other", "o1", "other-0")
    served = drain(queue)
    assert served[:7] == ["big-0", "small-0", "other-0", "big-1", "small-1", "big-2", "big-3"]
    assert len(served) == 103 and len(queue) == 0 and queue.tenants() == []


def test_a_link_runs_one_command_at_a_time_in_the_order_pushed() -> None:
    queue: FairQueue[str] = FairQueue(max_running_per_tenant=4)
    for i in range(3):
        queue.push("t", "link", f"link-{i}")
    queue.push("t", "other", "other-0")
    first = queue.pop()
    assert first is not None and first.job == "link-0"
    second = queue.pop()
    assert second is not None and second.job == "other-0"  # the link is busy: not link-1
    assert queue.pop() is None
    queue.done(first)
    third = queue.pop()
    assert third is not None and third.job == "link-1"


def test_a_tenant_runs_at_most_its_cap_and_the_others_take_the_rest() -> None:
    queue: FairQueue[str] = FairQueue(max_running_per_tenant=2)
    for i in range(5):
        queue.push("slow", f"slow-{i}", f"slow-{i}")
    claims = [queue.pop(), queue.pop()]
    assert [c.job for c in claims if c is not None] == ["slow-0", "slow-1"]
    assert queue.pop() is None  # at its cap: the remaining workers stay free for others
    queue.push("fast", "f", "fast-0")
    queue.push("fast", "g", "fast-1")
    taken = [queue.pop(), queue.pop()]
    assert [c.job for c in taken if c is not None] == ["fast-0", "fast-1"]
    assert (queue.running("slow"), queue.queued("slow"), queue.running("fast")) == (2, 3, 2)


def test_a_held_tenant_keeps_its_commands_in_order_until_it_may_run() -> None:
    queue: FairQueue[str] = FairQueue(max_running_per_tenant=8)
    for i in range(3):
        queue.push("paused", "link", f"paused-{i}")
    queue.push("active", "a", "active-0")
    assert drain(queue, runnable={"active"}) == ["active-0"]
    assert queue.queued("paused") == 3
    assert drain(queue, runnable={"active", "paused"}) == ["paused-0", "paused-1", "paused-2"]


def test_the_cap_must_allow_one_command() -> None:
    try:
        FairQueue(0)
    except ValueError as exc:
        assert "at least 1" in str(exc)
    else:
        raise AssertionError("a cap of 0 was accepted")


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.sampled_from("abc"), st.sampled_from("xyz")),
            st.tuples(st.just("pop"), st.sampled_from(["", "a", "ab"]), st.just("")),
            st.tuples(st.just("done"), st.integers(0, 7), st.just("")),
        ),
        max_size=120,
    ),
    cap=st.integers(1, 3),
)
def test_any_interleaving_keeps_links_in_order_and_tenants_under_their_cap(
    ops: list[tuple[str, object, str]], cap: int
) -> None:
    queue: FairQueue[tuple[str, str, int]] = FairQueue(cap)
    pushed: dict[tuple[str, str], int] = {}
    started: dict[tuple[str, str], list[int]] = {}
    running: list[Claim[tuple[str, str, int]]] = []
    for op, arg, link in ops:
        if op == "push":
            tenant = str(arg)
            n = pushed.get((tenant, link), 0)
            pushed[(tenant, link)] = n + 1
            queue.push(tenant, f"{tenant}/{link}", (tenant, link, n))
        elif op == "pop":
            held = str(arg)
            claim = queue.pop(lambda t, held=held: t not in held)  # type: ignore[misc]
            if claim is not None:
                tenant, link_name, n = claim.job
                assert tenant not in held
                assert all(c.link != claim.link for c in running)  # one at a time per link
                started.setdefault((tenant, link_name), []).append(n)
                running.append(claim)
                assert sum(c.tenant == tenant for c in running) <= cap
        elif running:
            queue.done(running.pop(int(str(arg)) % len(running)))
    # Per link: started in the order pushed, none skipped.
    assert all(ns == list(range(len(ns))) for ns in started.values())
    for claim in running:
        queue.done(claim)
    rest = drain(queue)  # type: ignore[arg-type]
    assert len(rest) + sum(len(ns) for ns in started.values()) == sum(pushed.values())


def tenant(state: str) -> Tenant:
    return Tenant(tenant="acme", state=state)  # type: ignore[arg-type]


def test_admission_by_registration_state() -> None:
    common = {"own_tenant": False, "loaded": True, "absent_confirmed": False}
    assert admit(tenant("active"), **common) == Verdict(Admission.RUN)
    assert admit(tenant("paused"), **common) == Verdict(Admission.HOLD)
    assert admit(tenant("removed"), **common) == Verdict(Admission.REFUSE, TENANT_REMOVED)
    # The state wins over being the deployment's own tenant.
    assert admit(tenant("paused"), own_tenant=True, loaded=True, absent_confirmed=False) == (
        Verdict(Admission.HOLD)
    )


def test_admission_of_a_tenant_absent_from_the_registry() -> None:
    def absent(own: bool, loaded: bool, confirmed: bool) -> Verdict:
        return admit(None, own_tenant=own, loaded=loaded, absent_confirmed=confirmed)

    assert absent(own=True, loaded=True, confirmed=True) == Verdict(Admission.RUN)
    assert absent(own=False, loaded=False, confirmed=False) == Verdict(Admission.HOLD)
    assert absent(own=False, loaded=True, confirmed=False) == Verdict(Admission.HOLD)
    assert absent(own=False, loaded=True, confirmed=True) == (
        Verdict(Admission.REFUSE, TENANT_UNKNOWN)
    )


def test_a_refused_tenant_becomes_a_failed_outcome_with_the_reason() -> None:
    result = failure(TenantNotServedError("acme", TENANT_REMOVED))
    assert (result.status, result.error_code) == (Status.FAILED, TENANT_REMOVED)
    assert result.error_message == "tenant 'acme' is removed: command not applied"
    unknown = failure(TenantNotServedError("ghost", TENANT_UNKNOWN))
    assert unknown.error_code == TENANT_UNKNOWN
    assert unknown.error_message == (
        "tenant 'ghost' is not in the tenant registry: command not applied"
    )


def test_what_a_finished_command_tells_its_tenants_breaker() -> None:
    def health(error: Exception | None, result: Result | None = None) -> bool | None:
        return tenant_health(result or failure(error or Exception()), error)

    assert health(None, Result(Status.APPLIED, "x")) is True
    assert health(None, Result(Status.CONFLICT, "x")) is True
    assert health(ServerError("down", system="wix", status=503)) is False  # retries exhausted
    assert health(AuthenticationError("no", system="wix", status=401)) is False
    assert health(ConfigurationError("credentials 'dir:/x': no such directory")) is False
    assert health(ValidationError("bad", system="wix", status=400)) is None  # the data's fault
    assert health(TenantNotServedError("acme", TENANT_REMOVED)) is None
    assert health(RuntimeError("bug")) is None


def test_a_tenant_over_its_share_is_passed_over_and_its_partition_read_again_later() -> None:
    shares: ReadShares[str] = ReadShares(cap=4)
    assert all(shares.take("p0", "big", offset) for offset in range(4))
    assert not shares.take("p0", "big", 4)  # over its share
    assert shares.take("p0", "small", 5)  # the others' commands behind it are still taken
    assert not shares.take("p1", "big", 9)
    assert shares.due() == {}
    shares.finished("big")
    assert shares.due() == {}  # 3 taken: more than half its share
    shares.finished("big")
    assert shares.due() == {"p0": 4, "p1": 9}  # read again from the first passed over
    assert shares.due() == {}  # forgotten once due
    assert (shares.taken("big"), shares.taken("small")) == (2, 1)


def test_once_passed_over_on_a_partition_a_tenant_stays_passed_over_there() -> None:
    """A link's commands share a partition: a later one must not overtake one passed over."""
    shares: ReadShares[str] = ReadShares(cap=1)
    assert shares.take("p0", "t", 0)
    assert not shares.take("p0", "t", 1)
    shares.finished("t")  # under its share again, but p0 is not read again yet
    assert not shares.take("p0", "t", 2)
    assert shares.take("p1", "t", 0)  # another partition has nothing passed over
    shares.finished("t")
    assert shares.due() == {"p0": 1}
    assert shares.take("p0", "t", 1)


def test_forgotten_partitions_are_not_read_again() -> None:
    shares: ReadShares[str] = ReadShares(cap=1)
    shares.take("p0", "t", 0)
    shares.take("p0", "t", 1)
    shares.take("p1", "t", 7)
    shares.forget(["p0"])
    shares.finished("t")
    assert shares.due() == {"p1": 7}
    shares.take("p2", "t", 3)
    shares.take("p2", "t", 4)
    shares.clear()
    assert shares.due() == {}

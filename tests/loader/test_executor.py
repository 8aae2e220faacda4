"""Retries and classification (``services.loader.executor``) with a scripted target."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from services.core.errors import RateLimitedError, ServerError, TetherError, ValidationError
from services.loader.executor import CommandExecutor
from services.loader.metrics import LoaderMetrics
from services.loader.plan import Action, LoaderCommand, Result, Status
from services.loader.workers import KeyedWorkers

COMMAND = LoaderCommand(
    command_id="c",
    tenant="default",
    link_id="l",
    system="wix",
    resource="contacts",
    action=Action.DELETE,
    target_id="w",
)


class Scripted:
    """Raises or returns the scripted answers in turn."""

    def __init__(self, *answers: Result | BaseException) -> None:
        self._answers: Iterator[Result | BaseException] = iter(answers)
        self.calls = 0

    def apply(self, command: LoaderCommand) -> Result:
        self.calls += 1
        answer = next(self._answers)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def executor(target: Scripted, **kw: object) -> CommandExecutor:
    options: dict[str, object] = {"initial_backoff": 0.001, "max_backoff": 0.01, **kw}
    return CommandExecutor({"wix": target}, **options)  # type: ignore[arg-type]


def test_transient_errors_are_retried_until_a_result() -> None:
    target = Scripted(ServerError("x", system="wix", status=503), Result(Status.APPLIED, "w"))
    execution = executor(target).execute(COMMAND)
    assert execution.result == Result(Status.APPLIED, "w") and execution.attempts == 2


def test_exhausted_retries_fail() -> None:
    target = Scripted(*[ServerError("x", system="wix", status=503)] * 3)
    execution = executor(target, max_attempts=3).execute(COMMAND)
    assert execution.result is not None and execution.result.status is Status.FAILED
    assert execution.attempts == 3 and isinstance(execution.error, ServerError)


def test_permanent_errors_are_not_retried() -> None:
    target = Scripted(ValidationError("x", system="wix", status=400))
    execution = executor(target).execute(COMMAND)
    assert execution.result is not None and execution.result.status is Status.REJECTED
    assert target.calls == 1


def test_a_429_waits_at_least_retry_after() -> None:
    throttled = RateLimitedError("x", system="wix", status=429, retry_after=0.2)
    target = Scripted(throttled, Result(Status.NOOP))
    started = time.monotonic()
    assert executor(target).execute(COMMAND).result == Result(Status.NOOP)
    assert time.monotonic() - started >= 0.2


def test_stopping_abandons_a_command_waiting_for_a_retry() -> None:
    abort = threading.Event()
    target = Scripted(*[ServerError("x", system="wix", status=503)] * 100)
    slow = executor(target, initial_backoff=5.0, max_backoff=5.0, max_attempts=0, abort=abort)
    threading.Timer(0.1, abort.set).start()
    started = time.monotonic()
    execution = slow.execute(COMMAND)
    assert execution.aborted and time.monotonic() - started < 2


def test_unexpected_exceptions_and_unknown_systems_fail() -> None:
    assert executor(Scripted(RuntimeError("bug"))).execute(COMMAND).result == Result(
        Status.FAILED,
        error_code="InternalError",
        error_message="unexpected RuntimeError (see the loader log)",
    )
    other = LoaderCommand(**{**COMMAND.__dict__, "system": "poweroffice"})
    execution = executor(Scripted()).execute(other)
    assert execution.result is not None and execution.result.status is Status.FAILED
    assert isinstance(execution.error, TetherError)


def test_keyed_workers_keep_one_key_in_order() -> None:
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def handle(job: tuple[str, int]) -> None:
        time.sleep(0.001 * (job[1] % 3))
        with lock:
            seen.setdefault(job[0], []).append(job[1])

    workers: KeyedWorkers[tuple[str, int]] = KeyedWorkers(4, handle)
    for i in range(60):
        key = f"link-{i % 5}"
        workers.submit(key, (key, i))
    workers.close()
    assert {k: v == sorted(v) for k, v in seen.items()} == {f"link-{i}": True for i in range(5)}
    assert sum(len(v) for v in seen.values()) == 60


def test_change_to_target_freshness_counts_live_changes_the_target_now_holds() -> None:
    registry = CollectorRegistry()
    metrics = LoaderMetrics(registry, systems=("poweroffice", "wix"))
    changed = datetime.now(UTC) - timedelta(seconds=42)
    live = replace(COMMAND, cause_changed_at=changed)

    def observed() -> tuple[float | None, float | None]:
        labels = {"system": "wix"}
        return (
            registry.get_sample_value("tether_loader_change_to_target_seconds_count", labels),
            registry.get_sample_value("tether_loader_change_to_target_seconds_sum", labels),
        )

    assert observed() == (0.0, 0.0)  # the series exists before the first change
    executor(Scripted(Result(Status.APPLIED, "w")), metrics=metrics).execute(live)
    count, total = observed()
    assert count == 1 and total is not None and 42 <= total < 60
    # Not counted: a refused write, a command without a live cause.
    failing = Scripted(ValidationError("x", system="wix", status=400))
    executor(failing, metrics=metrics).execute(live)
    executor(Scripted(Result(Status.NOOP, "w")), metrics=metrics).execute(COMMAND)
    assert observed()[0] == 1
    executor(Scripted(Result(Status.NOOP, "w")), metrics=metrics).execute(live)
    assert observed()[0] == 2  # the target already held it: fresh as of now

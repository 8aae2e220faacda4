"""Running one command to its outcome: retries for transient errors, classification of the rest.

``CommandExecutor.execute(command)`` calls its system's ``Applier`` and returns an ``Execution``:

- a ``Result`` from the target (CREATED / APPLIED / NOOP / LINKED_EXISTING / CONFLICT);
- after a retriable error (``TetherError.retriable``: 5xx, timeouts, dropped connections, a 429
  the client gave up on) the whole command is applied again — safe, because every target write is
  naturally idempotent (``targets``) — with capped exponential back-off and full jitter
  (tenacity), at least the ``Retry-After`` a 429 asked for, up to ``max_attempts`` (0: until the
  loader stops); when they are exhausted, a FAILED result;
- a permanent error becomes REJECTED or FAILED (``plan.failure``) and carries the error for the
  dead letter;
- ``aborted`` when the loader is stopping while the command waits to be retried: no outcome, the
  offset is not committed, and the command is re-delivered to the next loader.

Imports: tenacity, the core errors, ``plan``, ``targets`` (the ``Applier`` protocol) and
``metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from services.core.errors import RateLimitedError, TetherError
from services.loader.metrics import REFLECTED, LoaderMetrics
from services.loader.plan import LoaderCommand, Result, failure
from services.loader.targets import Applier

log = logging.getLogger("tether.loader")


class AbortedError(Exception):
    """The loader is stopping: give up on this command without an outcome."""


@dataclass(frozen=True)
class Execution:
    result: Result | None
    """None when aborted."""
    attempts: int
    error: BaseException | None = None
    """The error behind a REJECTED/FAILED result (for the dead letter)."""

    @property
    def aborted(self) -> bool:
        return self.result is None


def _retriable(error: BaseException) -> bool:
    return isinstance(error, TetherError) and error.retriable


class CommandExecutor:
    def __init__(
        self,
        targets: Mapping[str, Applier],
        *,
        metrics: LoaderMetrics | None = None,
        max_attempts: int = 8,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        abort: threading.Event | None = None,
    ) -> None:
        self._targets = dict(targets)
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._backoff = wait_random_exponential(multiplier=initial_backoff, max=max_backoff)
        self._max_backoff = max_backoff
        self.abort = abort or threading.Event()

    def execute(self, command: LoaderCommand) -> Execution:
        target = self._targets.get(command.system)
        started = time.monotonic()
        attempts = 0

        def once() -> Result:
            nonlocal attempts
            attempts += 1
            if target is None:
                raise TetherError(f"no target configured for system {command.system!r}")
            return target.apply(command)

        retrying = Retrying(
            retry=retry_if_exception(_retriable),
            stop=self._stop,
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._before_sleep(command, state),
            reraise=True,
        )
        try:
            result = retrying(once)
            execution = Execution(result, attempts)
        except AbortedError:
            return Execution(None, attempts)
        except TetherError as exc:
            if exc.retriable and self.abort.is_set():
                return Execution(None, attempts)
            execution = Execution(failure(exc, attempts=attempts), attempts, exc)
        except Exception as exc:  # a bug must not stop the pipeline: FAILED + dead letter
            log.exception(
                "applying a command failed unexpectedly",
                extra={"fields": {"command_id": command.command_id}},
            )
            execution = Execution(failure(exc, attempts=attempts), attempts, exc)
        if self._metrics is not None:
            self._metrics.command_seconds_of(command.system, command.action.value).observe(
                time.monotonic() - started
            )
            reflected = execution.result is not None and execution.result.status in REFLECTED
            if command.cause_changed_at is not None and reflected:
                self._metrics.freshness_of(command.system).observe(
                    max(0.0, (datetime.now(UTC) - command.cause_changed_at).total_seconds())
                )
        return execution

    def _stop(self, state: RetryCallState) -> bool:
        if self.abort.is_set():
            return True
        return self._max_attempts > 0 and state.attempt_number >= self._max_attempts

    def _wait(self, state: RetryCallState) -> float:
        wait = float(self._backoff(state))
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            wait = max(wait, min(error.retry_after, max(self._max_backoff, 1.0) * 2))
        return wait

    def _sleep(self, seconds: float) -> None:
        if self.abort.wait(seconds):
            raise AbortedError()

    def _before_sleep(self, command: LoaderCommand, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        reason = error.code if isinstance(error, TetherError) else type(error).__name__
        if self._metrics is not None:
            self._metrics.retries.labels(command.system, reason).inc()
        log.warning(
            "command attempt %d failed (%s); retrying",
            state.attempt_number,
            reason,
            extra={"fields": {"command_id": command.command_id, "system": command.system}},
        )

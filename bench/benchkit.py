"""What every benchmark in ``bench/`` shares: a run is bounded, it never hangs.

- :func:`add_timeout` + :func:`arm_timeout`: the whole run ends with exit status 1 and a
  message after ``--timeout`` seconds, whatever it is doing (a stalled broker, a hung call), for
  the benchmarks that have no progress figure to watch.
- :class:`Watchdog`: for the benchmarks that do, it also ends a phase whose progress figure has
  not moved for ``stall`` seconds, saying where it stood.

Imported by the scripts as ``benchkit`` (``python bench/<name>.py`` puts ``bench/`` on the path).
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType


def add_timeout(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=default,
        help=f"give up (exit 1, with a message) after this many seconds ({default:g})",
    )


def arm_timeout(seconds: float, name: str) -> None:
    """End the process (exit status 1) after ``seconds``, from whatever it is waiting on.

    ``os._exit``: a thread stuck in a network call must not keep the process alive.
    """

    def expire(signum: int, frame: FrameType | None) -> None:
        sys.stdout.flush()
        sys.stderr.write(f"{name}: TIMEOUT after {seconds:g}s — no figures (stalled or slow)\n")
        sys.stderr.flush()
        os._exit(1)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


class Watchdog:
    """Ends the benchmark (exit status 1, a clear message) instead of letting it hang: when the
    whole run exceeds ``timeout`` or a phase's progress figure has not changed for ``stall``
    seconds. With ``progress_every``, prints a progress line that often (stderr)."""

    def __init__(
        self, name: str, timeout: float, stall: float, progress_every: float | None = None
    ) -> None:
        self.name = name
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.stall = stall
        self.progress_every = progress_every
        self._phase = ""
        self._progress = 0
        self._since = time.monotonic()
        self._said = time.monotonic()

    def check(self, phase: str, progress: int, state: Callable[[], str]) -> None:
        now = time.monotonic()
        if phase != self._phase or progress != self._progress:
            self._phase, self._progress, self._since = phase, progress, now
        if now > self.deadline:
            sys.exit(f"{self.name}: TIMEOUT after {self.timeout:.0f}s in {phase}: {state()}")
        if now - self._since > self.stall:
            sys.exit(
                f"{self.name}: STALLED — {phase} made no progress for {self.stall:g}s: {state()}"
            )
        if self.progress_every is not None and now - self._said > self.progress_every:
            self._said = now
            print(f"[{time.strftime('%H:%M:%S')}] {phase}: {state()}", file=sys.stderr, flush=True)

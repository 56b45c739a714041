"""Keeps the app's long-running processes up: restarts with backoff, gives up on a crash loop.

A process that exits on its own is restarted after a delay that doubles with each crash in a
row. Only a process that keeps crashing at start (see `RestartPolicy`) stops the supervisor,
with a `CrashLoopError` naming the process and its log file.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from devstack.processes import ManagedProcess

logger = logging.getLogger(__name__)


class CrashLoopError(RuntimeError):
    """A process crashed at start too many times in a row; the message names its log file."""


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a process that exited on its own, and when to give up on it.

    An exit within `start_window` seconds of a start counts as a crash at start;
    `max_start_crashes` of those in a row mean giving up. The delay before a restart starts
    at `first_delay` and doubles with each crash in a row, up to `max_delay`; a process that
    ran `healthy_after` seconds before it crashed starts the count again.
    """

    first_delay: float = 1.0
    max_delay: float = 30.0
    healthy_after: float = 60.0
    start_window: float = 10.0
    max_start_crashes: int = 5

    def delay(self, streak: int) -> float:
        """The wait before the restart that follows crash number `streak` (1-based) in a row."""
        # The exponent is capped so that a long streak cannot overflow the float.
        return min(self.first_delay * 2.0 ** min(streak - 1, 32), self.max_delay)


def describe_exit(code: int) -> str:
    """'code 3' for an exit code, 'signal SIGKILL' for Popen's negative signal numbers."""
    if code >= 0:
        return f"code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


class Supervised:
    """One long-running process, started now and restarted by `check` under `policy`."""

    def __init__(
        self, name: str, start: Callable[[], ManagedProcess], policy: RestartPolicy
    ) -> None:
        self.name = name
        self._start = start
        self._policy = policy
        self.process = start()
        self._started_at = time.monotonic()
        self._streak = 0  # crashes in a row without a healthy run in between
        self._start_crashes = 0  # crashes in a row, each within start_window of its start
        self._restart_at: float | None = None

    def check(self, now: float) -> None:
        """Notice an exit and schedule the restart, or restart when it is due.

        Raises CrashLoopError once the process has crashed at start too often in a row.
        """
        if self._restart_at is None:
            if (code := self.process.poll()) is not None:
                self._on_exit(code, now)
        elif now >= self._restart_at:
            self._restart(now)

    def _on_exit(self, code: int, now: float) -> None:
        self.process.reap()  # whatever it started in its process group goes with it
        ran_for = now - self._started_at
        at_start = ran_for < self._policy.start_window
        self._start_crashes = self._start_crashes + 1 if at_start else 0
        if self._start_crashes >= self._policy.max_start_crashes:
            raise CrashLoopError(
                f"{self.name} crashed at start {self._start_crashes} times in a row (each within "
                f"{self._policy.start_window:.0f} s, last with {describe_exit(code)}); "
                f"see {self.process.log_path}"
            )
        healthy = ran_for >= self._policy.healthy_after
        self._streak = 1 if healthy else self._streak + 1
        delay = self._policy.delay(self._streak)
        self._restart_at = now + delay
        logger.warning(
            "%s (pid %d) exited with %s after %.1f s; restarting in %.1f s (crash %d in a row, "
            "log: %s)",
            self.name, self.process.pid, describe_exit(code), ran_for, delay, self._streak,
            self.process.log_path,
        )  # fmt: skip

    def _restart(self, now: float) -> None:
        self.process = self._start()
        self._started_at = now
        self._restart_at = None
        logger.info("%s restarted (pid %d)", self.name, self.process.pid)


class Supervisor:
    """Named processes kept up together; `run` blocks until one of them crash-loops."""

    def __init__(self, policy: RestartPolicy | None = None) -> None:
        self._policy = policy or RestartPolicy()
        self._children: dict[str, Supervised] = {}

    def start(self, name: str, start: Callable[[], ManagedProcess]) -> None:
        """Call `start` now to get the process `name`, and again whenever it has to restart."""
        if name in self._children:
            raise ValueError(f"{name} is already supervised")
        self._children[name] = Supervised(name, start, self._policy)

    def processes(self, prefix: str = "") -> list[ManagedProcess]:
        """The current process of every child whose name starts with `prefix`, in start order."""
        return [child.process for name, child in self._children.items() if name.startswith(prefix)]

    def tick(self) -> None:
        """Look at every child once: notice exits, restart those that are due."""
        now = time.monotonic()
        for child in self._children.values():
            child.check(now)

    def run(self, interval: float = 0.25) -> NoReturn:
        """Tick forever; only a CrashLoopError (or a signal handler's exception) ends it."""
        while True:
            self.tick()
            time.sleep(interval)

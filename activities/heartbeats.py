"""Heartbeats from a side thread while a sync activity does one long step.

A decode cannot heartbeat from inside libvips, so a short heartbeat timeout (which is
what lets Temporal notice a dead worker quickly) would otherwise need every step to
finish well within it, even on a loaded machine. The side thread beats while the process
is alive and stops when it dies or freezes, which is exactly what the timeout is for.
The SDK throttles what it sends to the server (at most one per 0.8 x the timeout), so
beating every second costs one call per few seconds of work.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import activity

BEAT_SECONDS = 1.0
# Short steps (a render from memory) beat only once they outlast this.
LAZY_BEAT_SECONDS = 1.0


@contextmanager
def heartbeating(
    detail: str, every: float = BEAT_SECONDS, first_after: float = 0.0
) -> Iterator[None]:
    """Heartbeat after `first_after` seconds (0: at once), then every `every` seconds,
    until the block ends."""
    if first_after <= 0:
        activity.heartbeat(detail)
    # The activity's context (which heartbeat() reads) is copied into the side thread.
    context = contextvars.copy_context()
    stop = threading.Event()

    def beat() -> None:
        if first_after > 0 and not stop.wait(first_after):
            context.run(activity.heartbeat, detail)
        while not stop.wait(every):
            context.run(activity.heartbeat, detail)

    thread = threading.Thread(target=beat, name="activity-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

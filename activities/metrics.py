"""What activities count for the worker's metrics, without knowing how they are served.

Activities call `count_bytes_in` for what they read; the worker's observability
interceptor (`workerside.observability`) opens a `tally` around each activity and turns
it into `imgproc_bytes_in_total{activity}`. Outside that interceptor (unit tests, the
API) counting is a no-op.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Tally:
    """What the running activity has counted so far; shared with its executor thread."""

    bytes_in: int = 0


_tally: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("tally", default=None)


def count_bytes_in(size: int) -> None:
    """Called by activities for what they read; a no-op outside the worker's interceptor."""
    tally = _tally.get()
    if tally is not None:
        tally.bytes_in += size


@contextmanager
def tallying() -> Iterator[Tally]:
    """Count what the activity run inside reads. Enter it before temporalio copies the
    context into the executor thread, so the activity's thread shares the tally."""
    tally = Tally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)

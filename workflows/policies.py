"""How `ImageProcessingWorkflow` schedules its activities: timeouts, retries and fences
(how it reads their failures is `workflows.errors`). Deterministic, like the workflow:
only the workflow's clock and the contracts.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        NON_RETRYABLE_ERROR_TYPES,
        Fence,
        PreparedImage,
    )

PREPARE_TIMEOUT = timedelta(minutes=2)
# Recovering from a lost worker (docs/fencing.md#recovery). A worker that dies or freezes
# stops heartbeating: its prepare and its started renders time out within these, however
# loaded a live worker is, since a live one keeps beating from a side thread. A render from
# memory usually ends before its first beat (after 1 s), so it costs no heartbeat at all.
PREPARE_HEARTBEAT_TIMEOUT = timedelta(seconds=4)
RENDER_HEARTBEAT_TIMEOUT = timedelta(seconds=3)
RENDER_TIMEOUT = timedelta(seconds=30)
# How long a resize may wait for the preparing worker before the image is prepared again
# elsewhere: a base, plus an allowance per render the worker already had queued when it
# prepared this image. A busy live worker's queue is not mistaken for a dead worker (a
# plain short wait turned a burst into a storm of re-preparations), and an idle one that
# died is noticed in seconds. Not retried: a worker that does not poll is presumed gone.
RENDER_START_BASE = timedelta(seconds=2)
RENDER_START_PER_QUEUED = timedelta(seconds=0.5)
RENDER_START_MAX = timedelta(seconds=30)
RENDER_RETRY_INTERVAL = timedelta(seconds=0.5)
# When a wait runs out, the workflow asks whether that worker still beats (behind the
# `render-liveness` patch): if so it waits again, twice as long, up to this in all.
RENDER_WAIT_BUDGET = timedelta(minutes=2)
LIVENESS_CHECK_TIMEOUT = timedelta(seconds=5)
LIVENESS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
)
# Preparations per image: each one after the first follows a lost worker or copy.
MAX_PREPARATIONS = 3
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# Recording the outcome outlasts the work: a Postgres outage longer than the work's
# retries still ends with the image's final state written once Postgres is back.
RECORD_BUDGET = timedelta(hours=1)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)


def transient_retry(
    max_attempts: int, initial_interval: timedelta = timedelta(seconds=1)
) -> RetryPolicy:
    """Bounded backoff: the default 12 attempts ride out about four minutes of outage."""
    return RetryPolicy(
        initial_interval=initial_interval,
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=max(1, max_attempts),
        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
    )


def render_start_timeout(prepared: PreparedImage) -> timedelta:
    allowance = RENDER_START_PER_QUEUED * prepared.renders_queued
    return min(RENDER_START_BASE + allowance, RENDER_START_MAX)


def fence_now() -> Fence:
    """The fence of an activity scheduled now: later than anything scheduled before it in
    this run, and than anything of an earlier run (workflow time only moves forward)."""
    return Fence(workflow.time_ns(), workflow.info().run_id)

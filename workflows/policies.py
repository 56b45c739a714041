"""How `ImageProcessingWorkflow` schedules its activities: timeouts, retries, fences, and
how it reads their failures. Deterministic, like the workflow: only the workflow's clock
and the contracts.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import exceptions, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        NON_RETRYABLE_ERROR_TYPES,
        RESUMABLE_ERROR_TYPES,
        TRANSIENT_ERROR_TYPES,
        ErrorCode,
        Fence,
        PreparedImage,
    )

PREPARE_TIMEOUT = timedelta(minutes=2)
RESIZE_TIMEOUT = timedelta(minutes=1)
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
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
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


def start_timed_out(error: ActivityError) -> bool:
    cause = error.cause
    return (
        isinstance(cause, exceptions.TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START
    )


def copy_lost(error: BaseException) -> bool:
    """The resize never ran where its copy is, the copy is no longer there, or its fence
    was overtaken (see `superseded`): preparing again under a fresh fence fixes all three."""
    if not isinstance(error, ActivityError):
        return False
    cause = error.cause
    if isinstance(cause, exceptions.TimeoutError):  # not the builtin a timer raises
        return cause.type == TimeoutType.SCHEDULE_TO_START
    return isinstance(cause, ApplicationError) and cause.type in (
        ErrorCode.WORKING_COPY_LOST,
        ErrorCode.SUPERSEDED,
    )


def superseded(error: ActivityError) -> bool:
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.type == ErrorCode.SUPERSEDED


# The codes an image's error may carry. Not `working_copy_lost` nor `superseded`: the
# image was prepared again already, so when they end an image, it simply failed.
RECORDED_ERROR_TYPES = frozenset(NON_RETRYABLE_ERROR_TYPES + TRANSIENT_ERROR_TYPES) - {
    ErrorCode.WORKING_COPY_LOST,
    ErrorCode.SUPERSEDED,
}


def keeps_source(code: str) -> bool:
    """Whether a failure with `code` leaves the upload worth keeping: a fault of ours, which
    a reset may get past, not a verdict on the image."""
    return code in RESUMABLE_ERROR_TYPES


def error_code(error: ActivityError) -> str:
    return code_of(error.cause)


def code_of(cause: BaseException | None) -> str:
    if isinstance(cause, ApplicationError) and cause.type in RECORDED_ERROR_TYPES:
        return cause.type
    return ErrorCode.PROCESSING_FAILED.value

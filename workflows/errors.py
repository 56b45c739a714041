"""How `ImageProcessingWorkflow` reads its activities' failures: which code an image's
error records, which failures mean "prepare again", and which leave the upload worth
keeping. Deterministic, like the workflow: only the contracts.
"""

from __future__ import annotations

from temporalio import exceptions, workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        NON_RETRYABLE_ERROR_TYPES,
        RESUMABLE_ERROR_TYPES,
        TRANSIENT_ERROR_TYPES,
        ErrorCode,
    )


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

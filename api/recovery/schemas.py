"""What the retry routes answer."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from api.recovery.retries import Retried


class RetryPublic(BaseModel):
    """`outcome`: `retrying` (reset now: `run_id` is the new run, `reset_event_id` the
    point it restarted from), `already_retrying` (a retry's run is going), or
    `not_retryable` (with `reason`)."""

    image_id: uuid.UUID
    outcome: str
    workflow_id: str
    run_id: str | None = None
    reset_event_id: int | None = None
    reason: str | None = None


class ProjectRetryPublic(BaseModel):
    project_id: int
    images: list[RetryPublic]
    # Failed images beyond this call's bound: call again once these are under way.
    left: int


def retry_public(retried: Retried) -> RetryPublic:
    return RetryPublic(
        image_id=retried.image_id,
        outcome=retried.outcome.value,
        workflow_id=f"image-{retried.image_id}",
        run_id=retried.run_id,
        reset_event_id=retried.reset_event_id,
        reason=retried.reason,
    )

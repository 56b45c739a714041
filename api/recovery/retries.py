"""`Retries`: take failed images up again, the way an operator should but rarely does.

Only images whose state in Postgres is `error` with a failure that is no verdict on the
image (`RESUMABLE_ERROR_TYPES`: storage or database down, processing failed), and only
the **latest** run of each image's workflow, and only while that run is closed. A batch
reset by visibility query would also match runs an earlier reset already superseded (they
stay Failed), re-running images that are `done` and terminating fresh runs.

The reset point is chosen from the run's history (`reset_point`); the reset's request id
is derived from the failed run, so a repeated call resets once. While the new run runs,
a retry answers `already_retrying` and does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ServiceUnavailableError
from api.recovery.reset_point import reset_event_id
from core.contracts import RESUMABLE_ERROR_TYPES, ImageState, workflow_id_for
from core.models import Image

logger = logging.getLogger(__name__)

# Images one project retry takes up at most; the answer says how many are left.
MAX_PROJECT_RETRIES = 500
# Images one project retry takes up at once: each is three calls to Temporal (describe,
# history, reset), so 500 one after another would hold the request for many seconds.
PROJECT_RETRY_CONCURRENCY = 16
_CLOSED_FAILED = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.TERMINATED,
}


class RetryOutcome(StrEnum):
    RETRYING = "retrying"  # reset now
    ALREADY_RETRYING = "already_retrying"  # a retry's run is going: nothing done
    NOT_RETRYABLE = "not_retryable"  # not in error, or failed for a reason a retry keeps


@dataclass(frozen=True)
class Retried:
    image_id: uuid.UUID
    outcome: RetryOutcome
    run_id: str | None = None  # the run now going
    reset_event_id: int | None = None
    reason: str | None = None


def retryable(image: Image) -> str | None:
    """Why a retry cannot help `image`, or None when it can."""
    if image.state != ImageState.ERROR:
        return f"the image is {image.state.value}, not error"
    if image.error_code not in RESUMABLE_ERROR_TYPES:
        return f"{image.error_code} is a verdict on the image: a retry fails the same way"
    return None


class Retries:
    def __init__(self, temporal: Client, sessions: sessionmaker[Session]) -> None:
        self._temporal = temporal
        self._sessions = sessions

    async def image(self, image: Image) -> Retried:
        handle = self._temporal.get_workflow_handle(workflow_id_for(str(image.id)))
        try:
            try:
                latest = await handle.describe()
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                why = retryable(image) or "its workflow is no longer kept (namespace retention)"
                return Retried(image.id, RetryOutcome.NOT_RETRYABLE, reason=why)
            if latest.status == WorkflowExecutionStatus.RUNNING:
                return Retried(image.id, RetryOutcome.ALREADY_RETRYING, latest.run_id)
            reason = retryable(image)
            if reason is not None or latest.status not in _CLOSED_FAILED:
                why = (
                    reason
                    or f"its workflow is {latest.status.name.lower() if latest.status else '?'}"
                )
                return Retried(image.id, RetryOutcome.NOT_RETRYABLE, reason=why)
            history = await handle.fetch_history()
            event_id = reset_event_id(history.events)
            if event_id is None:
                return Retried(image.id, RetryOutcome.NOT_RETRYABLE, reason="nothing to reset to")
            run_id = await self._reset(handle.id, latest.run_id, event_id)
        except (RPCError, RuntimeError) as error:
            raise ServiceUnavailableError("the workflow service is unavailable") from error
        logger.info("retrying image %s from event %s as run %s", image.id, event_id, run_id)
        return Retried(image.id, RetryOutcome.RETRYING, run_id, event_id)

    async def project(self, project_id: int) -> tuple[list[Retried], int]:
        """Retry every failed image of the project (at most MAX_PROJECT_RETRIES); also
        answers how many failed images are left for another call."""
        images, failed = await run_in_threadpool(self._failed, project_id)
        slots = asyncio.Semaphore(PROJECT_RETRY_CONCURRENCY)

        async def one(image: Image) -> Retried:
            async with slots:
                return await self.image(image)

        retried = await asyncio.gather(*(one(image) for image in images))
        return list(retried), max(0, failed - len(images))

    def _failed(self, project_id: int) -> tuple[list[Image], int]:
        """The first MAX_PROJECT_RETRIES retryable failed images, and how many there are
        in all. Both walk the project's rows: a rare, rate-limited control action, where
        an index on `state` would cost every upload its cheap (HOT) state updates."""
        retryable = (
            Image.project_id == project_id,
            Image.state == ImageState.ERROR.value,
            Image.error_code.in_(RESUMABLE_ERROR_TYPES),
        )
        with self._sessions() as session:
            taken = session.scalars(
                select(Image)
                .where(*retryable)
                .order_by(Image.created_at, Image.id)
                .limit(MAX_PROJECT_RETRIES)
            ).all()
            total = session.scalar(select(func.count()).select_from(Image).where(*retryable))
            return list(taken), total or 0

    async def _reset(self, workflow_id: str, run_id: str, event_id: int) -> str:
        request = ResetWorkflowExecutionRequest(
            namespace=self._temporal.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason="retried through the API",
            workflow_task_finish_event_id=event_id,
            # The same failed run always gets the same id: a repeated call resets once.
            request_id=f"retry-{run_id}",
        )
        answer = await self._temporal.workflow_service.reset_workflow_execution(request)
        return str(answer.run_id)

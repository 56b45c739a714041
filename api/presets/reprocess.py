"""`Reprocessing`: start, steer and read a project's `ReprocessProjectWorkflow`, and the
one-image `ReprocessImageWorkflow`.

Every start is a signal-with-start of the project's one workflow id: a running run gets
the signal (and takes up the newer presets), a closed one is followed by a new run. Never
two at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiErrorCode, ConflictError, ServiceUnavailableError
from core.reprocess_contracts import (
    CANCEL_SIGNAL,
    PAUSE_SIGNAL,
    PRESETS_CHANGED_SIGNAL,
    PROGRESS_QUERY,
    REPROCESS_IMAGE_WORKFLOW_NAME,
    REPROCESS_WORKFLOW_NAME,
    RESUME_SIGNAL,
    ReprocessImageRequest,
    ReprocessInput,
    ReprocessProgress,
    ReprocessState,
    reprocess_image_workflow_id,
    reprocess_queue_for,
    reprocess_workflow_id,
)
from core.search_attributes import PROJECT_ID
from core.settings import Settings

logger = logging.getLogger(__name__)


class Action(StrEnum):
    START = "start"  # start, or take up the current presets; resumes a paused run
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


_SIGNALS = {Action.PAUSE: PAUSE_SIGNAL, Action.RESUME: RESUME_SIGNAL, Action.CANCEL: CANCEL_SIGNAL}


class Reprocessing:
    def __init__(self, temporal: Client, settings: Settings) -> None:
        self._temporal = temporal
        self._settings = settings

    async def start(self, project_id: int, presets_version: int, resume: bool = False) -> str:
        """Signal-with-start the project's run toward `presets_version`; its workflow id.
        `resume`: also resume it if paused (an explicit start; a preset change does not)."""
        workflow_id = reprocess_workflow_id(project_id)
        request = ReprocessInput(
            project_id,
            presets_version,
            concurrency=self._settings.reprocess_concurrency,
            page_size=self._settings.reprocess_page_size,
        )
        try:
            handle: WorkflowHandle[Any, Any] = await self._temporal.start_workflow(
                REPROCESS_WORKFLOW_NAME,
                request,
                id=workflow_id,
                task_queue=reprocess_queue_for(self._settings.temporal_task_queue),
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                start_signal=PRESETS_CHANGED_SIGNAL,
                start_signal_args=[presets_version],
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(PROJECT_ID, str(project_id))]
                ),
            )
            if resume:
                await _resume(handle)
        except (RPCError, RuntimeError) as error:
            raise ServiceUnavailableError("the workflow service is unavailable") from error
        return workflow_id

    async def control(self, project_id: int, action: Action) -> None:
        """Pause, resume or cancel the running run; 409 `not_reprocessing` without one."""
        handle = self._temporal.get_workflow_handle(reprocess_workflow_id(project_id))
        if await self._status(handle) != WorkflowExecutionStatus.RUNNING:
            raise ConflictError(
                f"project {project_id} is not being reprocessed",
                code=ApiErrorCode.NOT_REPROCESSING,
            )
        try:
            await handle.signal(_SIGNALS[action])
        except (RPCError, RuntimeError) as error:
            raise ServiceUnavailableError("the workflow service is unavailable") from error

    async def progress(self, project_id: int) -> ReprocessProgress | None:
        """The run's progress (the last run's outcome once it closed), or None if none ran."""
        handle = self._temporal.get_workflow_handle(
            reprocess_workflow_id(project_id), result_type=ReprocessProgress
        )
        status = await self._status(handle)
        try:
            if status == WorkflowExecutionStatus.RUNNING:
                # A query needs a worker: bounded, so no worker answers 503, not a hang.
                answer = await handle.query(
                    PROGRESS_QUERY,
                    result_type=ReprocessProgress,
                    rpc_timeout=timedelta(seconds=self._settings.status_query_timeout_seconds),
                )
            elif status == WorkflowExecutionStatus.COMPLETED:
                answer = await handle.result()
            elif status is None:
                return None
            elif status == WorkflowExecutionStatus.CANCELED:
                # Cancelled from the Temporal UI or CLI: the same word as a cancel signal's.
                return ReprocessProgress(project_id, state=ReprocessState.CANCELLED.value)
            else:
                return ReprocessProgress(project_id, state=status.name.lower())
        except (RPCError, RuntimeError, WorkflowQueryFailedError) as error:
            raise ServiceUnavailableError("the workflow service is unavailable") from error
        assert isinstance(answer, ReprocessProgress)
        return answer

    async def image(self, image_id: str, project_id: int) -> str:
        """Start (or join, while it runs) the one image's reprocess; its workflow id."""
        workflow_id = reprocess_image_workflow_id(image_id)
        try:
            await self._temporal.start_workflow(
                REPROCESS_IMAGE_WORKFLOW_NAME,
                ReprocessImageRequest(image_id, project_id),
                id=workflow_id,
                task_queue=reprocess_queue_for(self._settings.temporal_task_queue),
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(PROJECT_ID, str(project_id))]
                ),
            )
        except (RPCError, RuntimeError) as error:
            raise ServiceUnavailableError("the workflow service is unavailable") from error
        return workflow_id

    async def _status(self, handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
        try:
            return (await handle.describe()).status
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise ServiceUnavailableError("the workflow service is unavailable") from error
        except RuntimeError as error:
            raise ServiceUnavailableError("the workflow service is unavailable") from error


async def _resume(handle: WorkflowHandle[Any, Any]) -> None:
    try:
        await handle.signal(RESUME_SIGNAL)
    except RPCError as error:
        # A run with nothing to do may have ended already: nothing is paused then.
        if error.status != RPCStatusCode.NOT_FOUND:
            raise

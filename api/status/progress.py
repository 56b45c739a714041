"""Live progress of a running workflow, from its `status` query, with a short timeout."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from api.schemas import ProgressPublic
from core.contracts import STATUS_QUERY, ImageState, ProcessingStatus, workflow_id_for

logger = logging.getLogger(__name__)

RUNNING_STATES = {ImageState.INIT, ImageState.UPLOADED, ImageState.PROCESSING}


async def live_progress(
    client: Client, image_id: uuid.UUID, timeout_seconds: float
) -> ProgressPublic | None:
    """The workflow's own view, or None when no worker answers in time."""
    handle = client.get_workflow_handle(workflow_id_for(str(image_id)))
    try:
        async with asyncio.timeout(timeout_seconds):
            status: ProcessingStatus = await handle.query(
                STATUS_QUERY,
                result_type=ProcessingStatus,
                rpc_timeout=timedelta(seconds=timeout_seconds),
            )
    except (RPCError, RuntimeError, WorkflowQueryFailedError, TimeoutError) as error:
        logger.debug("no live progress for %s: %r", image_id, error)
        return None
    return ProgressPublic(
        state=ImageState(status.state),
        versions_done=status.versions_done,
        versions_total=status.versions_total,
    )

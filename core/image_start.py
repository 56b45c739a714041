"""Starting an image's workflow, shared by the API's intake and the cleanup's reconciler.

An image has exactly one workflow id, `image-<id>`. A start while it runs joins it
(USE_EXISTING); once it has closed, the id is never reused (REJECT_DUPLICATE), since
operators retry a closed image with `temporal workflow reset`, which keeps its id.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import WORKFLOW_NAME, ImageProcessingInput, ImageState, workflow_id_for
from core.models import Image
from core.preset_sets import PresetSet
from core.search_attributes import PROJECT_ID
from core.settings import Settings

# How long a worker may take over one workflow task before another takes it. Ours take
# milliseconds (a local activity that takes longer is covered: the SDK renews the task),
# so Temporal's default of 10 s would only be how long an image waits on a killed worker.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)


def upload_timeout_seconds(settings: Settings) -> float:
    return float(settings.upload_link_expiry_seconds + settings.upload_confirm_grace_seconds)


def processing_input(
    image: Image,
    settings: Settings,
    source_etag: str | None = None,
    presets: PresetSet | None = None,
    upload_timeout: float | None = None,
) -> ImageProcessingInput:
    """`source_etag`: the object a direct upload wrote (its original: nothing to seal);
    `presets`: the project's set now, which the image is rendered with; `upload_timeout`:
    how long an `init` image waits for its upload (default: a link's whole lifetime)."""
    awaiting = image.state == ImageState.INIT
    if upload_timeout is None:
        upload_timeout = upload_timeout_seconds(settings)
    return ImageProcessingInput(
        str(image.id),
        image.project_id,
        image.source_key,
        awaiting_upload=awaiting,
        upload_timeout_seconds=upload_timeout if awaiting else 0.0,
        max_attempts=settings.activity_max_attempts,
        source_etag=source_etag,
        source_format=image.format,
        presets=presets.presets if presets else [],
        presets_version=presets.version if presets else 0,
    )


async def image_workflow_exists(client: Client, image_id: uuid.UUID) -> bool | None:
    """Whether the image's workflow exists (running or closed); None when Temporal
    cannot say."""
    try:
        await client.get_workflow_handle(workflow_id_for(str(image_id))).describe()
    except RPCError as error:
        return False if error.status == RPCStatusCode.NOT_FOUND else None
    except RuntimeError:  # the lazily connected client, while Temporal is unreachable
        return None
    return True


async def start_image(client: Client, settings: Settings, request: ImageProcessingInput) -> str:
    """Start `image-<id>`, findable by its ProjectId search attribute; idempotent (above).

    Raises what the client raises (RPCError, or RuntimeError from a lazy client that
    cannot reach Temporal); an id that ran before is not an error.
    """
    workflow_id = workflow_id_for(request.image_id)
    # Already started means it ran (or runs): this start is a replay.
    with suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            WORKFLOW_NAME,
            request,
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(PROJECT_ID, str(request.project_id))]
            ),
        )
    return workflow_id

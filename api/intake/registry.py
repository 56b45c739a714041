"""Registering an image, shared by both upload flows: its row, its workflow, and undoing them."""

from __future__ import annotations

import logging
import unicodedata
import uuid
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiErrorCode, ConflictError, ServiceUnavailableError
from core.contracts import WORKFLOW_NAME, ImageProcessingInput, ImageState, workflow_id_for
from core.events import publish, state_event
from core.models import Image
from core.preset_sets import PresetSet, current_presets
from core.search_attributes import PROJECT_ID
from core.settings import Settings
from core.storage import Storage

logger = logging.getLogger(__name__)

# How long a worker may take over one workflow task before another takes it. Ours take
# milliseconds (a local activity that takes longer is covered: the SDK renews the task),
# so Temporal's default of 10 s would only be how long an image waits on a killed worker.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)


def sanitize_filename(filename: str | None) -> str | None:
    """Keep a display name only: no path, no control characters, bounded length."""
    if not filename:
        return None
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or None


def register_image(sessions: sessionmaker[Session], image: Image) -> Image:
    """Insert the row and announce its first state, in one transaction.

    With an idempotency key already used in the project, nothing is inserted and the
    earlier request's row is answered instead; the unique constraint settles races.
    """
    try:
        with sessions.begin() as session:
            session.add(image)
            publish(session, state_event(image.id, image.project_id, image.state))
        return image
    except IntegrityError:
        if image.idempotency_key is None:
            raise
    with sessions() as session:
        earlier = session.scalar(
            select(Image).where(
                Image.project_id == image.project_id,
                Image.idempotency_key == image.idempotency_key,
            )
        )
    if earlier is None:  # the earlier request was undone meanwhile
        raise ConflictError(
            "a request with this key is being undone; retry", code=ApiErrorCode.RETRY
        )
    return earlier


def check_replay(earlier: Image, fingerprint: str | None) -> None:
    """A key may only be replayed with the same request."""
    if earlier.request_fingerprint != fingerprint:
        raise ConflictError(
            f"this Idempotency-Key was used for another request (image {earlier.id})",
            code=ApiErrorCode.IDEMPOTENCY_KEY_REUSED,
        )


def processing_input(
    image: Image,
    settings: Settings,
    source_etag: str | None = None,
    presets: PresetSet | None = None,
) -> ImageProcessingInput:
    """`source_etag`: the object a direct upload wrote (its original: nothing to seal);
    `presets`: the project's set now, which the image is rendered with."""
    awaiting = image.state == ImageState.INIT
    return ImageProcessingInput(
        str(image.id),
        image.project_id,
        image.source_key,
        awaiting_upload=awaiting,
        upload_timeout_seconds=upload_timeout_seconds(settings) if awaiting else 0.0,
        max_attempts=settings.activity_max_attempts,
        source_etag=source_etag,
        source_format=image.format,
        presets=presets.presets if presets else [],
        presets_version=presets.version if presets else 0,
    )


def project_presets(sessions: sessionmaker[Session], project_id: int) -> PresetSet:
    """The project's current preset set, read when its upload is registered."""
    with sessions() as session:
        return current_presets(session, project_id)


def upload_timeout_seconds(settings: Settings) -> float:
    return float(settings.upload_link_expiry_seconds + settings.upload_confirm_grace_seconds)


def lock_image_row(session: Session, image_id: uuid.UUID) -> bool:
    """Begin `session`'s transaction by locking the image's row; False if it is gone.

    Held by a replay while it starts the image's workflow, and by the first request's undo
    while it decides to delete the row: the two never interleave.
    """
    locked = session.scalar(select(Image.id).where(Image.id == image_id).with_for_update())
    return locked is not None


def delete_locked_row(session: Session, image_id: uuid.UUID) -> None:
    session.execute(delete(Image).where(Image.id == image_id))
    session.commit()


async def workflow_started(client: Client, image_id: uuid.UUID) -> bool | None:
    """Whether the image's workflow exists; None when Temporal cannot say."""
    try:
        await client.get_workflow_handle(workflow_id_for(str(image_id))).describe()
    except RPCError as error:
        return False if error.status == RPCStatusCode.NOT_FOUND else None
    except RuntimeError:  # the lazily connected client, while Temporal is unreachable
        return None
    return True


def discard_object(storage: Storage, key: str) -> None:
    """Remove an object nothing refers to. Never raises: the staging cleanup is the backstop."""
    try:
        storage.delete(key)
    except Exception:
        logger.exception("could not remove unused object %s", key)


async def start_image_workflow(
    client: Client, settings: Settings, request: ImageProcessingInput
) -> str:
    """Start `image-<id>`, findable by its ProjectId search attribute.

    Idempotent: an image has exactly one workflow id. A start while it runs joins it
    (USE_EXISTING); once it has closed, the id is never reused (REJECT_DUPLICATE), since
    operators retry a closed image with `temporal workflow reset`, which keeps its id.
    """
    workflow_id = workflow_id_for(request.image_id)
    try:
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
    except WorkflowAlreadyStartedError:
        pass  # it ran before: this request is a replay
    except (RPCError, RuntimeError) as error:
        # The lazily connected client raises RuntimeError while it cannot reach Temporal.
        raise ServiceUnavailableError("the workflow service is unavailable") from error
    return workflow_id

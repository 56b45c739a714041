"""Registering an image, shared by both upload flows: its row, its workflow, and undoing them."""

from __future__ import annotations

import logging
import unicodedata
import uuid

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from api.errors import ServiceUnavailableError
from core.contracts import WORKFLOW_NAME, ImageProcessingInput, ImageState, workflow_id_for
from core.events import publish, state_event
from core.models import Image
from core.settings import Settings
from core.storage import Storage

logger = logging.getLogger(__name__)

PROJECT_ID_ATTRIBUTE = SearchAttributeKey.for_keyword("ProjectId")


def source_key_for(image_id: uuid.UUID) -> str:
    """Originals live under a server-made key; the client's filename is never a key."""
    return f"originals/{image_id}"


def sanitize_filename(filename: str | None) -> str | None:
    """Keep a display name only: no path, no control characters, bounded length."""
    if not filename:
        return None
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or None


def insert_image(sessions: sessionmaker[Session], image: Image) -> None:
    """Insert the row and announce its first state, in one transaction."""
    with sessions.begin() as session:
        session.add(image)
        publish(session, state_event(image.id, image.project_id, ImageState(image.state)))


def forget_image(
    sessions: sessionmaker[Session], storage: Storage, image_id: uuid.UUID, source_key: str
) -> None:
    """Undo a registration whose workflow could not be started. Never raises."""
    try:
        with sessions.begin() as session:
            image = session.get(Image, image_id)
            if image is not None:
                session.delete(image)
        storage.delete(source_key)
    except Exception:
        logger.exception("could not undo image %s", image_id)


async def start_image_workflow(
    client: Client, settings: Settings, request: ImageProcessingInput
) -> str:
    """Start `image-<id>`, findable by its ProjectId search attribute."""
    workflow_id = workflow_id_for(request.image_id)
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            request,
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(PROJECT_ID_ATTRIBUTE, str(request.project_id))]
            ),
        )
    except RPCError as error:
        raise ServiceUnavailableError("the workflow service is unavailable") from error
    return workflow_id

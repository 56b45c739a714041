"""Start the workflows of images whose API process died before starting them.

The intake inserts an image's row (and, for a direct upload, has stored its original)
before it starts `image-<id>`. An API process killed in between leaves a row in its
first state, `init` or `uploaded`, with no workflow: listed and announced, but never
processed, and the staging cleanup keeps its object for it. A retry with the same
Idempotency-Key starts it; nothing else would. So the cleanup run finds such rows once
older than `lost_after_seconds` and starts their workflows, as the API would have: the
image was stored and announced, and it is not lost. An `init` image (whose request never
answered its link) waits only what is left of a link's lifetime since its row was made,
then expires as `upload_expired` through its workflow, like any unused link.

Fenced against a request still at work on the image: the row is locked (skipping a row
the API holds: its undo or a replay's start), its state and age checked again under the
lock, and the workflow started while the lock is held. An undo that comes after waits,
finds the workflow and keeps the image; one that came first has deleted the row. A start
of the API's own racing this one joins it (one workflow id, USE_EXISTING).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client

from core.contracts import START_LOST_IMAGES_ACTIVITY, ImageState, SweepInput, SweepResult
from core.image_start import (
    image_workflow_exists,
    processing_input,
    start_image,
    upload_timeout_seconds,
)
from core.models import Image
from core.preset_sets import current_presets
from core.settings import Settings

FIRST_STATES = (ImageState.INIT, ImageState.UPLOADED)
# An `init` image whose link's lifetime is over still gets its workflow, which expires it.
MIN_UPLOAD_WAIT_SECONDS = 1.0

Page = list[tuple[datetime, uuid.UUID]]


class LostImageActivities:
    def __init__(self, client: Client, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings

    def all(self) -> list[Any]:
        return [self.start_lost_images]

    @activity.defn(name=START_LOST_IMAGES_ACTIVITY)
    async def start_lost_images(self, request: SweepInput) -> SweepResult:
        """Start the workflow of every image `init` or `uploaded` for longer than
        `older_than_seconds` that has none. `removed` counts the workflows started,
        `failed` the images Temporal could not say about (the next run looks again)."""
        result = SweepResult()
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            page = await asyncio.to_thread(self._page, request, after)
            for _, image_id in page:
                started = await self._start_if_lost(image_id, request.older_than_seconds)
                if started is None:
                    result.failed += 1
                elif started:
                    result.removed += 1
                activity.heartbeat(result.removed)
            if len(page) < request.batch_size:
                break
            after = page[-1]
        if result.removed or result.failed:
            activity.logger.warning(
                "started %d lost image workflows (%d undecided)", result.removed, result.failed
            )
        return result

    def _page(self, request: SweepInput, after: tuple[datetime, uuid.UUID] | None) -> Page:
        """One keyset page of candidates, oldest first: by Postgres' clock, which dated them."""
        query = (
            select(Image.created_at, Image.id)
            .where(Image.state.in_(FIRST_STATES), _older_than(request.older_than_seconds))
            .order_by(Image.created_at, Image.id)
            .limit(request.batch_size)
        )
        if after is not None:
            query = query.where(tuple_(Image.created_at, Image.id) > tuple_(*after))
        with self._sessions() as session:
            return [(created, image_id) for created, image_id in session.execute(query)]

    async def _start_if_lost(self, image_id: uuid.UUID, older_than_seconds: int) -> bool | None:
        """True if this started its workflow; False if it needs none; None if undecided."""
        session = self._sessions()
        try:
            locked = await asyncio.to_thread(_lock_lost, session, image_id, older_than_seconds)
            if locked is None:
                return False  # gone, moved on, or held by a request at work on it
            image, age = locked
            exists = await image_workflow_exists(self._client, image_id)
            if exists is not False:
                return None if exists is None else False
            presets = await asyncio.to_thread(current_presets, session, image.project_id)
            wait = max(upload_timeout_seconds(self._settings) - age, MIN_UPLOAD_WAIT_SECONDS)
            start = processing_input(image, self._settings, None, presets, wait)
            await start_image(self._client, self._settings, start)
            activity.logger.warning(
                "started the workflow of image %s, %s %.0f s with none", image_id, image.state, age
            )
            return True
        finally:
            await asyncio.to_thread(session.close)


def _older_than(seconds: int) -> Any:
    return Image.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def _lock_lost(
    session: Session, image_id: uuid.UUID, older_than_seconds: int
) -> tuple[Image, float] | None:
    """The image and its age in seconds, its row locked, if it is still a candidate."""
    row = session.execute(
        select(Image, func.extract("epoch", func.now() - Image.created_at))
        .where(
            Image.id == image_id,
            Image.state.in_(FIRST_STATES),
            _older_than(older_than_seconds),
        )
        .with_for_update(of=Image, skip_locked=True)
    ).one_or_none()
    if row is None:
        return None
    image, age = row
    return image, float(age)

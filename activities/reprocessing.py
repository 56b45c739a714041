"""The reprocessing activities: list a project's images by page, bring one image to its
project's current presets (one download, one decode), and report progress.

`reprocess_image` renders only what is missing or outdated (`core.reprocess_plan`), from
one decode of the sealed original, writes each object under a key of this attempt's own
(`version_key_for`: the fence and the attempt), then commits every row in one transaction.
The objects the old rows pointed at stay until every link to them handed out before the
commit has expired; the staging cleanup deletes them then (`activities.reprocess_records`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import classify_errors
from activities.heartbeats import heartbeating
from activities.images import as_application_error, render_preset, scratch_dir, stored_result
from activities.reprocess_records import ReprocessRecords
from activities.webhook_outbox import WebhookOutbox
from core.contracts import ImageState, ResizeResult, version_key_for
from core.events import publish
from core.imaging import DecodedImage, Rendered, decode_source
from core.inspection import limits_from
from core.link_lifetime import superseded_keep
from core.models import Image
from core.presets import Preset, geometry
from core.reprocess_contracts import (
    LIST_REPROCESS_PAGE_ACTIVITY,
    REPORT_REPROCESS_ACTIVITY,
    REPROCESS_IMAGE_ACTIVITY,
    ImageOutcome,
    PageCursor,
    ReprocessImageInput,
    ReprocessImageResult,
    ReprocessPage,
    ReprocessPageInput,
    ReprocessProgress,
    ReprocessState,
)
from core.reprocess_plan import plan_for
from core.settings import Settings
from core.storage import DERIVATIVE_CACHE_CONTROL, Storage
from core.webhooks.contracts import WebhookEvent


class ReprocessActivities:
    def __init__(
        self,
        storage: Storage,
        sessions: sessionmaker[Session],
        settings: Settings,
        hooks: WebhookOutbox | None = None,
    ) -> None:
        self._storage = storage
        self._hooks = hooks or WebhookOutbox(sessions, None)
        self._sessions = sessions
        self._records = ReprocessRecords(sessions, superseded_keep(settings))
        self._settings = settings
        self._limits = limits_from(settings)

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.list_page, self.reprocess_image, self.report]

    @activity.defn(name=LIST_REPROCESS_PAGE_ACTIVITY)
    @classify_errors
    def list_page(self, request: ReprocessPageInput) -> ReprocessPage:
        """The next page of the project's images that are `done` or being processed (those
        answer `skipped`, and are walked again), in keyset order (created, id)."""
        states = [ImageState.UPLOADED.value, ImageState.PROCESSING.value, ImageState.DONE.value]
        statement = select(Image.id, Image.created_at).where(
            Image.project_id == request.project_id, Image.state.in_(states)
        )
        if request.after is not None:
            after = (datetime.fromisoformat(request.after.created_at), request.after.image_id)
            statement = statement.where(tuple_(Image.created_at, Image.id) > after)
        statement = statement.order_by(Image.created_at, Image.id).limit(request.limit)
        with self._sessions() as session:
            rows = session.execute(statement).all()
        ids = [str(row.id) for row in rows]
        if len(rows) < request.limit:
            return ReprocessPage(ids, None)
        last = rows[-1]
        return ReprocessPage(ids, PageCursor(last.created_at.isoformat(), str(last.id)))

    @activity.defn(name=REPROCESS_IMAGE_ACTIVITY)
    @classify_errors
    def reprocess_image(self, request: ReprocessImageInput) -> ReprocessImageResult:
        """Bring one image to its project's current presets; a no-op when it is current."""
        image_id = uuid.UUID(request.image_id)
        snapshot = self._records.snapshot(image_id)
        if snapshot is None or snapshot.state != ImageState.DONE:
            return ReprocessImageResult(request.image_id, ImageOutcome.SKIPPED.value)
        plan = plan_for(snapshot.presets, snapshot.stored)
        if plan.empty:
            return ReprocessImageResult(request.image_id, ImageOutcome.CURRENT.value)
        written: list[ResizeResult] = []
        if plan.render:
            with heartbeating("reprocessing"):
                decoded = self._decode(snapshot.source_key, plan.render)
                written = self._write_all(request, decoded, plan.render)
        announced = frozenset((p.name, p.listed_format) for p in snapshot.presets)
        commit = self._records.commit(
            image_id, written, plan.remove, request.fence, announced, snapshot.presets_version
        )
        self._delete(commit.unused)
        if not commit.applied:
            return ReprocessImageResult(request.image_id, ImageOutcome.SKIPPED.value)
        return ReprocessImageResult(
            request.image_id,
            ImageOutcome.RENDERED.value,
            rendered=[f"{w.version}.{w.format}" for w in written if w.key not in commit.unused],
            removed=[f"{v.name}.{v.format}" for v in plan.remove],
        )

    @activity.defn(name=REPORT_REPROCESS_ACTIVITY)
    @classify_errors
    def report(self, progress: ReprocessProgress) -> None:
        """Push the run's progress to the project's WebSocket clients (and its event log);
        at its end, record and start the project's `reprocess.done` webhook deliveries."""
        deliveries: list[str] = []
        with self._sessions.begin() as session:
            publish(session, {"type": "reprocess", **vars(progress)})
            if progress.state == ReprocessState.DONE:
                event = WebhookEvent.REPROCESS_DONE
                deliveries = self._hooks.record_project_event(session, progress.project_id, event)
        self._hooks.start(deliveries)

    def _decode(self, source_key: str, presets: list[Preset]) -> DecodedImage:
        with scratch_dir() as scratch:
            path = scratch / "source"
            self._storage.download_file(source_key, path)
            return self._decoded(path, presets)

    def _decoded(self, path: Path, presets: list[Preset]) -> DecodedImage:
        with as_application_error():
            return decode_source(path, self._limits, presets)

    def _write_all(
        self, request: ReprocessImageInput, decoded: DecodedImage, presets: list[Preset]
    ) -> list[ResizeResult]:
        """Render everything, claim every key in one transaction, then write the objects."""
        rendered = [(p, item) for p in presets for item in self._render(decoded, p)]
        attempt = activity.info().attempt
        keys = [
            version_key_for(
                request.project_id, request.image_id, p.name, r.extension, request.fence, attempt
            )
            for p, r in rendered
        ]
        # Claimed first: a crash after a write leaves the object to the cleanup.
        self._records.claim(uuid.UUID(request.image_id), keys)
        return [self._write(key, p, r) for key, (p, r) in zip(keys, rendered, strict=True)]

    def _render(self, decoded: DecodedImage, preset: Preset) -> list[Rendered]:
        sizes = geometry(decoded.source.width, decoded.source.height, preset)
        return render_preset(decoded, preset, sizes.scaled, sizes.final, self._settings)

    def _write(self, key: str, preset: Preset, rendered: Rendered) -> ResizeResult:
        self._storage.put_bytes(key, rendered.data, rendered.content_type, DERIVATIVE_CACHE_CONTROL)
        return stored_result(preset, key, rendered)

    def _delete(self, keys: list[str]) -> None:
        """This attempt's objects no row took (never linked), after the commit; the cleanup
        takes any left."""
        try:
            for key in keys:
                self._storage.delete(key)
            self._records.forget(keys)
        except Exception:
            activity.logger.warning("left %s to the staging cleanup", keys, exc_info=True)

"""The image-processing activities: decode once, derive each size, record the outcome.

They are synchronous on purpose: Pillow, boto3 and SQLAlchemy all block, so the worker
runs them on a thread pool, and CPU scales with worker processes.

`prepare` keeps the decoded copy in this worker's memory (`WorkingCopies`) and answers
this worker's own task queue, where the workflow sends the image's resizes.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import classify_errors, public_message
from activities.metrics import count_bytes_in
from activities.records import ImageRecords
from activities.webhook_outbox import WebhookOutbox
from activities.working_copies import WorkingCopies
from core.contracts import (
    DISCARD_ACTIVITY,
    FAIL_ACTIVITY,
    FINISH_ACTIVITY,
    PREPARE_ACTIVITY,
    RESIZE_ACTIVITY,
    DiscardInput,
    ErrorCode,
    FailureInput,
    FinishInput,
    ImageState,
    PreparedImage,
    PrepareInput,
    ResizeInput,
    ResizeResult,
    version_key_for,
)
from core.facts import compute_facts
from core.imaging import (
    DecodedImage,
    Rendered,
    decode_source,
    render_decoded,
    render_version,
    save_working_copy,
)
from core.inspection import ImagingError, limits_from
from core.settings import Settings
from core.storage import DERIVATIVE_CACHE_CONTROL, ObjectMissingError, Storage

if TYPE_CHECKING:
    from hashlib import _Hash as Hash


class ImageActivities:
    """`render_queue` is the task queue only this worker process polls for resizes."""

    def __init__(
        self,
        storage: Storage,
        sessions: sessionmaker[Session],
        settings: Settings,
        render_queue: str,
        copies: WorkingCopies,
        hooks: WebhookOutbox | None = None,
    ) -> None:
        self._storage = storage
        self._records = ImageRecords(sessions, hooks)
        self._settings = settings
        self._limits = limits_from(settings)
        self._render_queue = render_queue
        self._copies = copies

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.prepare, self.resize, self.finish, self.fail, self.discard]

    @activity.defn(name=PREPARE_ACTIVITY)
    @classify_errors
    def prepare(self, request: PrepareInput) -> PreparedImage:
        """Decode the source once, upright and normalized, into the working copy."""
        image_id = uuid.UUID(request.image_id)
        known_hash = self._records.set_state(image_id, ImageState.PROCESSING)
        # The API hashed a direct upload as it streamed; a link's upload it never saw, so
        # that one is hashed here as it downloads (about 3 ms of CPU a MB, no second read).
        digest = None if known_hash else hashlib.sha256()
        with _scratch_dir() as scratch:
            source_path = scratch / "source"
            self._download(request.source_key, source_path, digest)
            activity.heartbeat("downloaded")
            with _as_application_error():
                decoded = decode_source(source_path, self._limits)
            sha256 = None if digest is None else digest.hexdigest()
            if not request.render_versions:
                self._store_working_copy(request.working_key, decoded, scratch / "working")
                return self._prepared(request, decoded, sha256, render_queue=None)
        self._copies.keep(request.image_id, decoded, request.render_versions)
        return self._prepared(request, decoded, sha256, render_queue=self._render_queue)

    def _store_working_copy(self, key: str, decoded: DecodedImage, working_path: Path) -> None:
        """For workflows started before `render-where-prepared`: the copy goes to S3."""
        activity.heartbeat("decoded")
        save_working_copy(decoded, working_path)
        self._storage.upload_file(key, working_path, "application/octet-stream", "private")

    def _prepared(
        self,
        request: PrepareInput,
        decoded: DecodedImage,
        sha256: str | None,
        render_queue: str | None,
    ) -> PreparedImage:
        source = decoded.source
        image_id = uuid.UUID(request.image_id)
        facts = compute_facts(decoded.pixels)  # a few ms, from a 32x32 thumbnail of the copy
        self._records.set_source_details(
            image_id, source.format, source.width, source.height, facts, sha256
        )
        activity.logger.info("prepared %s (%s)", request.image_id, source.format)
        return PreparedImage(
            working_key=request.working_key,
            width=source.width,
            height=source.height,
            format=source.format,
            has_alpha=decoded.has_alpha,
            render_queue=render_queue,
        )

    @activity.defn(name=RESIZE_ACTIVITY)
    @classify_errors
    def resize(self, request: ResizeInput) -> ResizeResult:
        """Make one size from the working copy; rerunning it overwrites the same key and row."""
        rendered = self._render(request)
        if not request.from_memory:  # renders from memory are bounded by a short timeout
            activity.heartbeat("encoded")
        key = version_key_for(
            request.project_id, request.image_id, request.version, rendered.extension
        )
        self._storage.put_bytes(key, rendered.data, rendered.content_type, DERIVATIVE_CACHE_CONTROL)
        result = ResizeResult(
            version=request.version,
            key=key,
            width=rendered.width,
            height=rendered.height,
            bytes=len(rendered.data),
            content_type=rendered.content_type,
        )
        self._records.upsert_version(uuid.UUID(request.image_id), request.project_id, result)
        if request.from_memory:
            self._copies.rendered(request.image_id, request.version)
        return result

    def _render(self, request: ResizeInput) -> Rendered:
        size, quality = (request.width, request.height), self._settings.jpeg_quality
        if request.from_memory:
            with _as_application_error():
                return render_decoded(self._copies.get(request.image_id), size, quality)
        with _scratch_dir() as scratch:
            working_path = scratch / "working"
            self._download(request.working_key, working_path)
            activity.heartbeat("downloaded")
            with _as_application_error():
                return render_version(working_path, size, quality)

    @activity.defn(name=FINISH_ACTIVITY)
    @classify_errors
    def finish(self, request: FinishInput) -> None:
        """Drop the working copy, then say `done`: once done, nothing temporary is left."""
        if request.working_key is not None:
            self._storage.delete(request.working_key)
        self._records.set_state(uuid.UUID(request.image_id), ImageState.DONE)

    @activity.defn(name=FAIL_ACTIVITY)
    @classify_errors
    def fail(self, request: FailureInput) -> DiscardInput:
        """Record the error and drop the version rows; answer the objects to discard.

        Only Postgres is needed here, so an image still ends in `error` while S3 is down.
        """
        image_id = uuid.UUID(request.image_id)
        message = public_message(request.code, request.message)
        if message != request.message:
            activity.logger.warning("image %s failed: %s", request.image_id, request.message)
        keys = self._records.set_error(image_id, request.code, message)
        keys.append(request.working_key)
        keys.extend(key for key in (request.source_key, request.original_key) if key is not None)
        return DiscardInput(keys)

    @activity.defn(name=DISCARD_ACTIVITY)
    @classify_errors
    def discard(self, request: DiscardInput) -> None:
        for key in request.keys:
            self._storage.delete(key)

    def _download(self, key: str, path: Path, digest: Hash | None = None) -> None:
        try:
            self._storage.download_file(key, path, digest)
        except ObjectMissingError as error:
            activity.logger.warning("object %s is missing", key)
            raise ApplicationError(
                public_message(ErrorCode.SOURCE_MISSING, ""),
                type=ErrorCode.SOURCE_MISSING,
                non_retryable=True,
            ) from error
        count_bytes_in(path.stat().st_size)


@contextmanager
def _scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="imgproc-") as name:
        yield Path(name)


@contextmanager
def _as_application_error() -> Iterator[None]:
    """Bad images fail at once: retrying cannot fix them."""
    try:
        yield
    except ImagingError as error:
        raise ApplicationError(str(error), type=error.code, non_retryable=True) from error

"""The image-processing activities: decode once, derive each size, record the outcome.

They are synchronous on purpose: Pillow, boto3 and SQLAlchemy all block, so the worker
runs them on a thread pool, and CPU scales with worker processes.

`prepare` keeps the decoded copy in this worker's memory (`WorkingCopies`) and answers
this worker's own task queue, where the workflow sends the image's resizes.

Every write is fenced (`core.fencing`, docs/fencing.md): an attempt that Temporal already
gave up on, and that something newer has overtaken, is refused before it writes anything
and raises `superseded`. A resize writes its object under a key of its own and deletes it
again when its row is refused.
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
from activities.heartbeats import LAZY_BEAT_SECONDS, heartbeating
from activities.metrics import count_bytes_in
from activities.records import ImageRecords
from activities.version_records import VersionRecords
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
from core.fencing import StaleWriteError
from core.imaging import DecodedImage, Rendered, RenderPlan, decode_source, render_plan
from core.inspection import ImagingError, limits_from
from core.link_lifetime import superseded_keep
from core.presets import Preset, legacy_preset
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
        self._versions = VersionRecords(sessions, superseded_keep(settings))
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
        known_hash = self._records.set_state(image_id, ImageState.PROCESSING, request.fence)
        # The API hashed a direct upload as it streamed; a link's upload it never saw, so
        # that one is hashed here as it downloads (about 3 ms of CPU a MB, no second read).
        digest = None if known_hash else hashlib.sha256()
        with scratch_dir() as scratch, heartbeating("preparing"):
            source_path = scratch / "source"
            self._download(request.source_key, source_path, digest)
            with as_application_error():
                decoded = decode_source(source_path, self._limits, request.presets)
            sha256 = None if digest is None else digest.hexdigest()
        prepared = self._prepared(request, decoded, sha256, render_queue=self._render_queue)
        prepared.renders_queued = self._copies.keep(
            request.image_id, decoded, request.render_versions, request.fence.token
        )
        return prepared

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
            image_id, source.format, source.width, source.height, request.fence, facts, sha256
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
        """Make one size from the working copy, under a key of this attempt's own."""
        try:
            result = self._resize(request)
        except StaleWriteError:
            # Overtaken: the copy it rendered from will never be rendered for a newer
            # fence, unless a newer preparation made it here (which `discard` keeps).
            self._copies.discard(request.image_id, request.fence.token)
            raise
        self._copies.rendered(request.image_id, request.version, request.fence.token)
        return result

    def _resize(self, request: ResizeInput) -> ResizeResult:
        # Beats only if the render outlasts a second (a loaded machine), so a dead or
        # frozen worker is noticed within the heartbeat timeout, and a live one never.
        with heartbeating("rendering", first_after=LAZY_BEAT_SECONDS):
            return self._resize_and_write(request)

    def _resize_and_write(self, request: ResizeInput) -> ResizeResult:
        """Every format of the preset from one resize of the copy; the first answers, with
        the others in `more_formats`."""
        preset = request.preset or legacy_preset(request.version)
        first, *more = self._write(request, preset, self._render(request))
        first.more_formats = more
        return first

    def _write(
        self, request: ResizeInput, preset: Preset, renders: list[Rendered]
    ) -> list[ResizeResult]:
        """Write every format under this attempt's keys, with one claim and one commit for
        them all: a version's formats appear together, and cost one lock of the image."""
        image_id = uuid.UUID(request.image_id)
        attempts = range(1, activity.info().attempt + 1)
        keys = [
            [
                version_key_for(
                    request.project_id, request.image_id, request.version, r.extension,
                    request.fence, n,
                )
                for n in attempts
            ]
            for r in renders
        ]  # fmt: skip
        own = [each[-1] for each in keys]
        self._versions.claim_all(image_id, own, request.fence)
        for key, rendered in zip(own, renders, strict=True):
            self._storage.put_bytes(
                key, rendered.data, rendered.content_type, DERIVATIVE_CACHE_CONTROL
            )
        written = [stored_result(preset, k, r) for k, r in zip(own, renders, strict=True)]
        try:
            committed = self._versions.commit_all(
                image_id, request.project_id, written, request.fence, preset.listed_format
            )
        except StaleWriteError:
            self._discard_quietly(own)
            raise
        # What earlier attempts of this resize may have written before they failed (an
        # outage between their write and their row): only one of the keys is in the row.
        # The object the row named before stays for the links to it (`superseded`).
        kept = {c.result.key for c in committed}
        self._discard_quietly([key for c in committed for key in c.unused])
        # An earlier attempt may be alive still (frozen, its heartbeat lost) and write its
        # key after this delete: its claim stays, for the cleanup's sweep once it is old.
        earlier = [key for each in keys for key in each[:-1] if key not in kept]
        self._discard_quietly(earlier, forget=False)
        return [c.result for c in committed]

    def _render(self, request: ResizeInput) -> list[Rendered]:
        preset = request.preset or legacy_preset(request.version)
        final = (request.width, request.height)
        scaled = (request.scaled_width, request.scaled_height) if request.scaled_width else final
        copy = self._copies.get(request.image_id)
        return render_preset(copy, preset, scaled, final, self._settings)

    @activity.defn(name=FINISH_ACTIVITY)
    @classify_errors
    def finish(self, request: FinishInput) -> None:
        """Say `done` (the decoded copy was only ever in the preparing worker's memory)."""
        self._records.set_state(uuid.UUID(request.image_id), ImageState.DONE, request.fence)

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
        keys = self._records.set_error(image_id, request.code, message, request.fence)
        guarded = [key for key in (request.source_key, request.original_key) if key is not None]
        return DiscardInput(keys, request.fence, request.image_id, guarded)

    @activity.defn(name=DISCARD_ACTIVITY)
    @classify_errors
    def discard(self, request: DiscardInput) -> None:
        """Delete what a failed image left; its upload and original only while it is still
        failed (a late attempt must not take them from a run that a reset started)."""
        for key in request.keys:
            self._storage.delete(key)
        self._versions.forget(request.keys)
        if not request.guarded_keys:
            return
        with self._records.while_still_failed(uuid.UUID(request.image_id), request.fence) as failed:
            if failed:
                for key in request.guarded_keys:
                    self._storage.delete(key)
        if not failed:
            activity.logger.warning("kept the upload of %s: it was retried", request.image_id)

    def _discard_quietly(self, keys: list[str], *, forget: bool = True) -> None:
        """Objects nothing points at; the staging cleanup deletes any left behind.
        `forget`: no attempt will write them again, so their claims go too."""
        try:
            for key in keys:
                self._storage.delete(key)
            if forget:
                self._versions.forget(keys)
        except Exception:
            activity.logger.warning("left %s to the staging cleanup", keys, exc_info=True)

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


def render_preset(
    decoded: DecodedImage,
    preset: Preset,
    scaled: tuple[int, int],
    final: tuple[int, int],
    settings: Settings,
) -> list[Rendered]:
    """Every format of one preset from the copy in memory; a failure is not retried."""
    plan = RenderPlan(
        scaled=scaled,
        final=final,
        gravity=preset.gravity,
        formats=preset.formats,
        quality=preset.quality,
        jpeg_quality=settings.jpeg_quality,
        avif_effort=settings.avif_effort,
        webp_effort=settings.webp_effort,
    )
    with as_application_error():
        return render_plan(decoded, plan)


def stored_result(preset: Preset, key: str, rendered: Rendered) -> ResizeResult:
    """What a version row records of a derivative written under `key`."""
    return ResizeResult(
        version=preset.name,
        key=key,
        width=rendered.width,
        height=rendered.height,
        bytes=len(rendered.data),
        content_type=rendered.content_type,
        format=rendered.format,
        spec=preset.spec(rendered.format),
    )


@contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="imgproc-") as name:
        yield Path(name)


@contextmanager
def as_application_error() -> Iterator[None]:
    """Bad images fail at once: retrying cannot fix them."""
    try:
        yield
    except ImagingError as error:
        raise ApplicationError(str(error), type=error.code, non_retryable=True) from error

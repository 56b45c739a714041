"""Direct upload: stream the multipart body to S3 while checking the image header.

The body lands under the image's original key (`originals/<id>`), stored as an attachment
of the format its header showed: what the workflow's seal would make of a staged upload,
without the copy. No client can write that key (upload links sign `staging/<id>` only),
so there is nothing to seal, and the workflow skips the seal (docs/security.md). Nothing is
kept for a rejected request: the object is removed on any error.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from api.errors import (
    ApiErrorCode,
    BadRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnprocessableError,
    error_for_code,
)
from api.intake.dedupe import dedupe_requested
from api.intake.multipart import StreamingForm
from api.intake.registry import sanitize_filename
from core.contracts import MAX_PROJECT_ID, ErrorCode, ImageState, original_key_for
from core.inspection import (
    HEADER_BYTES,
    ImageInfo,
    ImagingError,
    InvalidImageError,
    Limits,
    identify,
    limits_from,
    media_type_for,
)
from core.models import Image
from core.settings import Settings
from core.storage import ATTACHMENT, ORIGINAL_CACHE_CONTROL, Storage
from core.storage_writer import StreamingWriter

logger = logging.getLogger(__name__)

# Header checks are retried as the head grows: a JPEG's size marker can sit after a large
# EXIF block. Only the last attempt's error is final.
SNIFF_THRESHOLDS = (64 * 1024, HEADER_BYTES)
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# The form fields read (besides the file): each may come once.
FORM_FIELDS = frozenset({"project_id", "dedupe"})


@dataclass
class ReceivedUpload:
    image_id: uuid.UUID
    project_id: int
    source_key: str
    filename: str | None
    info: ImageInfo
    bytes: int
    sha256: str
    etag: str
    # The `dedupe` form field (None when absent: the project's setting decides).
    dedupe: bool | None = None


class _HeaderSniffer:
    """Keeps the first MiB of the file and identifies it as early as it can.

    A bad format or size is refused while the body is still streaming. When the whole file
    fits in the head, its frames are counted too; larger files get that check in the worker.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._head = bytearray()
        self._whole_file = True
        self.info: ImageInfo | None = None

    def feed(self, data: bytes) -> None:
        before = len(self._head)
        room = SNIFF_THRESHOLDS[-1] - before
        self._head.extend(data[:room])
        self._whole_file = self._whole_file and len(data) <= room
        if self.info is None and any(before < t <= len(self._head) for t in SNIFF_THRESHOLDS):
            self._identify(final=len(self._head) >= SNIFF_THRESHOLDS[-1], complete=False)

    def finish(self) -> ImageInfo:
        if self.info is None or self._whole_file:
            self._identify(final=True, complete=self._whole_file)
        assert self.info is not None
        return self.info

    def _identify(self, *, final: bool, complete: bool) -> None:
        try:
            self.info = identify(bytes(self._head), self._limits, complete=complete)
        except ImagingError as error:
            # Only a broken-looking header may still be a header cut short by our threshold.
            if final or not isinstance(error, InvalidImageError):
                raise error_for_code(error.code, str(error)) from error


async def receive_upload(
    request: Request, storage: Storage, settings: Settings, check_project: Callable[[int], None]
) -> ReceivedUpload:
    """Stream the multipart body's file part to S3; undo the object on any rejection.

    `check_project` raises for a project the caller may not use: as soon as the field
    arrives when it comes before the file, else before the object is completed.
    """
    form = StreamingForm(request.headers.get("content-type"), read_fields=FORM_FIELDS)
    image_id = uuid.uuid4()
    writer = storage.open_writer(
        original_key_for(str(image_id)),
        "application/octet-stream",
        ORIGINAL_CACHE_CONTROL,
        content_disposition=ATTACHMENT,
    )
    try:
        info = await _stream_file(request, form, writer, settings, check_project)
        project_id = _project_id(form.fields)
        check_project(project_id)
        dedupe = dedupe_requested(form.fields)
        await run_in_threadpool(writer.complete)
    except BaseException:
        await run_in_threadpool(_abort_quietly, writer)
        raise
    return ReceivedUpload(
        image_id,
        project_id,
        writer.key,
        sanitize_filename(form.filename),
        info,
        writer.bytes_written,
        writer.sha256,
        writer.etag or "",
        dedupe,
    )


async def _stream_file(
    request: Request,
    form: StreamingForm,
    writer: StreamingWriter,
    settings: Settings,
    check_project: Callable[[int], None],
) -> ImageInfo:
    sniffer = _HeaderSniffer(limits_from(settings))
    body_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    if _declared_length(request) > body_limit:
        raise _too_large(settings)  # refused before a byte of the body is read
    body_bytes = 0
    project_checked = False
    async for chunk in paced(request.stream(), UploadPace.from_settings(settings)):
        body_bytes += len(chunk)
        if body_bytes > body_limit:
            raise _too_large(settings)
        file_data = form.feed(chunk)
        if not project_checked and "project_id" in form.fields:
            # Refuse another tenant's upload before streaming its whole file to S3.
            check_project(_project_id(form.fields))
            project_checked = True
        for data in file_data:
            sniffer.feed(data)
            if writer.append(data):
                # The header is identified within its first MiB, long before a full part.
                _describe(writer, sniffer.info)
                await run_in_threadpool(writer.flush_part)
        if writer.bytes_written > settings.max_upload_bytes:
            raise _too_large(settings)
    form.finish()
    if form.filename is None or not form.file_complete:
        raise BadRequestError("the form must contain one complete file part named 'file'")
    if writer.bytes_written == 0:
        raise UnprocessableError("the file is empty", code=ErrorCode.INVALID_IMAGE)
    info = sniffer.finish()
    _describe(writer, info)
    return info


def _describe(writer: StreamingWriter, info: ImageInfo | None) -> None:
    """Store the original as a download of the type its header showed, as a seal would."""
    if info is None:
        raise AssertionError("a full part arrived before the header was identified")
    writer.describe(media_type_for(info.format))


@dataclass(frozen=True)
class UploadPace:
    """An upload's overall deadline, and the average rate it must keep after a grace period."""

    deadline_seconds: float
    min_bytes_per_second: int
    grace_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadPace:
        return cls(
            settings.upload_deadline_seconds,
            settings.upload_min_bytes_per_second,
            settings.upload_rate_grace_seconds,
        )

    def seconds_allowed(self, received: int) -> float:
        """How long after the start the next byte may arrive, having `received` so far."""
        if self.min_bytes_per_second == 0:
            return self.deadline_seconds
        behind_after = self.grace_seconds + (received + 1) / self.min_bytes_per_second
        return min(self.deadline_seconds, behind_after)


async def paced(chunks: AsyncIterator[bytes], pace: UploadPace) -> AsyncIterator[bytes]:
    """The body's chunks, or 408 once the client falls behind its pace (slow-loris)."""
    started = time.monotonic()
    received = 0
    while True:
        remaining = started + pace.seconds_allowed(received) - time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeoutError(
                f"the upload is too slow: it must finish within {pace.deadline_seconds:g} s "
                f"and average {pace.min_bytes_per_second} bytes/s"
            ) from None
        received += len(chunk)
        yield chunk


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError as error:
        raise BadRequestError("Content-Length is not a number") from error


def _too_large(settings: Settings) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the file exceeds {settings.max_upload_bytes} bytes")


def _project_id(fields: dict[str, str]) -> int:
    raw = fields.get("project_id")
    if raw is None:
        raise UnprocessableError(
            "the form needs a project_id field", code=ApiErrorCode.VALIDATION_ERROR
        )
    try:
        project_id = int(raw.strip())
    except ValueError:
        project_id = 0
    if not 1 <= project_id <= MAX_PROJECT_ID:
        raise UnprocessableError(
            "project_id must be a positive integer", code=ApiErrorCode.VALIDATION_ERROR
        )
    return project_id


def _abort_quietly(writer: StreamingWriter) -> None:
    try:
        writer.abort()
    except Exception:
        logger.exception("could not remove rejected upload %s", writer.key)


def image_row(upload: ReceivedUpload, idempotency_key: str | None) -> Image:
    return Image(
        id=upload.image_id,
        project_id=upload.project_id,
        state=ImageState.UPLOADED,
        source_key=upload.source_key,
        original_filename=upload.filename,
        format=upload.info.format,
        width=upload.info.width,
        height=upload.info.height,
        bytes=upload.bytes,
        content_sha256=upload.sha256,
        idempotency_key=idempotency_key,
        request_fingerprint=upload.sha256 if idempotency_key else None,
    )

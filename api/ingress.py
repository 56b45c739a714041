"""Direct upload: stream the body to S3, check the header, record the image, start its workflow.

Ordering matters: nothing is answered 202 until the object is stored, the row exists and
the workflow has started; when a step fails, the earlier ones are undone.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.service import RPCError

from api.errors import (
    BadRequestError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnprocessableError,
    UnsupportedMediaError,
)
from api.multipart import StreamingForm
from core.contracts import (
    WORKFLOW_NAME,
    ImageProcessingInput,
    ImageState,
    workflow_id_for,
)
from core.events import publish, state_event
from core.imaging import (
    ImageInfo,
    ImagingError,
    Limits,
    UnsupportedFormatError,
    identify,
)
from core.models import Image
from core.settings import Settings
from core.storage import ORIGINAL_CACHE_CONTROL, Storage, StreamingWriter

logger = logging.getLogger(__name__)

PROJECT_ID_ATTRIBUTE = SearchAttributeKey.for_keyword("ProjectId")
# Header checks are retried as the head grows: a JPEG's size marker can sit after a large
# EXIF block. Only the last attempt's error is final.
SNIFF_THRESHOLDS = (64 * 1024, 1024 * 1024)
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@dataclass
class ReceivedUpload:
    image_id: uuid.UUID
    project_id: int
    source_key: str
    filename: str | None
    info: ImageInfo
    bytes: int


class _HeaderSniffer:
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._head = bytearray()
        self.info: ImageInfo | None = None

    def feed(self, data: bytes) -> None:
        if self.info is not None:
            return
        before = len(self._head)
        self._head.extend(data[: SNIFF_THRESHOLDS[-1] - before])
        if any(before < t <= len(self._head) for t in SNIFF_THRESHOLDS):
            self._try(final=len(self._head) >= SNIFF_THRESHOLDS[-1])

    def finish(self) -> ImageInfo:
        if self.info is None:
            self._try(final=True)
        assert self.info is not None
        return self.info

    def _try(self, *, final: bool) -> None:
        try:
            self.info = identify(bytes(self._head), self._limits)
        except ImagingError as error:
            if final:
                raise _api_error_for(error) from error


def _api_error_for(error: ImagingError) -> UnsupportedMediaError | UnprocessableError:
    if isinstance(error, UnsupportedFormatError):
        return UnsupportedMediaError(str(error), code=error.code)
    return UnprocessableError(str(error), code=error.code)


def source_key_for(image_id: uuid.UUID) -> str:
    return f"originals/{image_id}"


async def receive_upload(request: Request, storage: Storage, settings: Settings) -> ReceivedUpload:
    """Stream the multipart body's file part to S3; undo the object on any rejection."""
    form = StreamingForm(request.headers.get("content-type"))
    image_id = uuid.uuid4()
    writer = storage.open_writer(
        source_key_for(image_id), "application/octet-stream", ORIGINAL_CACHE_CONTROL
    )
    try:
        info = await _stream_file(request, form, writer, settings)
        project_id = _project_id(form.fields)
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
    )


async def _stream_file(
    request: Request, form: StreamingForm, writer: StreamingWriter, settings: Settings
) -> ImageInfo:
    sniffer = _HeaderSniffer(Limits(settings.max_pixels, settings.max_side_px))
    body_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    body_bytes = 0
    async for chunk in request.stream():
        body_bytes += len(chunk)
        if body_bytes > body_limit:
            raise _too_large(settings)
        for data in form.feed(chunk):
            sniffer.feed(data)
            if writer.append(data):
                await run_in_threadpool(writer.flush_part)
        if writer.bytes_written > settings.max_upload_bytes:
            raise _too_large(settings)
    form.finish()
    if form.filename is None or not form.file_complete:
        raise BadRequestError("the form must contain one complete file part named 'file'")
    if writer.bytes_written == 0:
        raise UnprocessableError("the file is empty", code="invalid_image")
    return sniffer.finish()


def _too_large(settings: Settings) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the file exceeds {settings.max_upload_bytes} bytes")


def _project_id(fields: dict[str, str]) -> int:
    raw = fields.get("project_id")
    if raw is None:
        raise UnprocessableError("the form needs a project_id field", code="validation_error")
    try:
        project_id = int(raw.strip())
    except ValueError:
        project_id = 0
    if not 1 <= project_id <= 2**63 - 1:
        raise UnprocessableError("project_id must be a positive integer", code="validation_error")
    return project_id


def _abort_quietly(writer: StreamingWriter) -> None:
    try:
        writer.abort()
    except Exception:
        logger.exception("could not remove rejected upload %s", writer.key)


def sanitize_filename(filename: str | None) -> str | None:
    """Keep a display name only: no path, no control characters, bounded length."""
    if not filename:
        return None
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or None


def record_image(sessions: sessionmaker[Session], upload: ReceivedUpload) -> None:
    with sessions.begin() as session:
        session.add(
            Image(
                id=upload.image_id,
                project_id=upload.project_id,
                state=ImageState.UPLOADED.value,
                source_key=upload.source_key,
                original_filename=upload.filename,
                format=upload.info.format,
                width=upload.info.width,
                height=upload.info.height,
                bytes=upload.bytes,
            )
        )
        publish(session, state_event(upload.image_id, upload.project_id, ImageState.UPLOADED))


def forget_image(sessions: sessionmaker[Session], storage: Storage, upload: ReceivedUpload) -> None:
    """Undo an accepted upload whose workflow could not be started."""
    with sessions.begin() as session:
        image = session.get(Image, upload.image_id)
        if image is not None:
            session.delete(image)
    storage.delete(upload.source_key)


async def start_processing(client: Client, settings: Settings, upload: ReceivedUpload) -> str:
    workflow_id = workflow_id_for(str(upload.image_id))
    try:
        await client.start_workflow(
            WORKFLOW_NAME,
            ImageProcessingInput(str(upload.image_id), upload.project_id, upload.source_key),
            id=workflow_id,
            task_queue=settings.temporal_task_queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(PROJECT_ID_ATTRIBUTE, str(upload.project_id))]
            ),
        )
    except RPCError as error:
        raise ServiceUnavailableError("the workflow service is unavailable") from error
    return workflow_id

"""Activities of the upload-link flow: check what the client put in S3, or expire the link."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import classify_errors
from activities.records import ImageRecords
from core.contracts import (
    EXPIRE_UPLOAD_ACTIVITY,
    VERIFY_UPLOAD_ACTIVITY,
    ErrorCode,
    ExpireUploadInput,
    ImageState,
    VerifyUploadInput,
)
from core.inspection import HEADER_BYTES, ImagingError, identify, limits_from
from core.settings import Settings
from core.storage import ObjectMissingError, Storage


class UploadActivities:
    def __init__(
        self, storage: Storage, sessions: sessionmaker[Session], settings: Settings
    ) -> None:
        self._storage = storage
        self._records = ImageRecords(sessions)
        self._max_bytes = settings.max_upload_bytes
        self._limits = limits_from(settings)

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.verify, self.expire]

    @activity.defn(name=VERIFY_UPLOAD_ACTIVITY)
    @classify_errors
    def verify(self, request: VerifyUploadInput) -> None:
        """The object exists, is within the byte limit, and its header is an allowed image."""
        try:
            size = self._storage.size_of(request.source_key)
            head = self._storage.read_head(request.source_key, HEADER_BYTES)
        except ObjectMissingError as error:
            raise _refusal("nothing was uploaded to the link", ErrorCode.UPLOAD_MISSING) from error
        if size > self._max_bytes:
            raise _refusal(f"the file exceeds {self._max_bytes} bytes", ErrorCode.PAYLOAD_TOO_LARGE)
        try:
            info = identify(head, self._limits, complete=size <= len(head))
        except ImagingError as error:
            raise _refusal(str(error), error.code) from error
        self._records.mark_uploaded(
            uuid.UUID(request.image_id), info.format, info.width, info.height, size, request.fence
        )

    @activity.defn(name=EXPIRE_UPLOAD_ACTIVITY)
    @classify_errors
    def expire(self, request: ExpireUploadInput) -> None:
        """No confirmation came in time: drop any late object and end the image.

        A stale attempt (the image went on under a later fence) is refused before it
        deletes anything.
        """
        self._records.set_error(
            uuid.UUID(request.image_id),
            ErrorCode.UPLOAD_EXPIRED,
            "no upload was confirmed before the link expired",
            request.fence,
        )
        self._storage.delete(request.source_key)
        activity.logger.info("expired upload link of %s (%s)", request.image_id, ImageState.ERROR)


def _refusal(message: str, code: str) -> ApplicationError:
    return ApplicationError(message, type=code, non_retryable=True)

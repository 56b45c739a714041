"""Activities of uploads: check what a client put in S3 through its link, or expire the
link, and seal any verified upload as the image's original.

Sealing makes the original the workflow's own: the staged object (which an upload link's
POST may still replace until the link expires) is copied server-side, only while it is the
very version that was verified (its ETag), to a key no client can write, and removed.
Everything after the seal reads the sealed copy, and links serve only that.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import classify_errors
from activities.records import ImageRecords
from activities.webhook_outbox import WebhookOutbox
from core.contracts import (
    EXPIRE_UPLOAD_ACTIVITY,
    SEAL_ORIGINAL_ACTIVITY,
    VERIFY_UPLOAD_ACTIVITY,
    ErrorCode,
    ExpireUploadInput,
    ImageState,
    SealInput,
    VerifiedUpload,
    VerifyUploadInput,
)
from core.inspection import HEADER_BYTES, ImagingError, identify, limits_from, media_type_for
from core.settings import Settings
from core.storage import ObjectChangedError, ObjectMissingError, Storage


class UploadActivities:
    def __init__(
        self,
        storage: Storage,
        sessions: sessionmaker[Session],
        settings: Settings,
        hooks: WebhookOutbox | None = None,
    ) -> None:
        self._storage = storage
        self._records = ImageRecords(sessions, hooks)
        self._max_bytes = settings.max_upload_bytes
        self._limits = limits_from(settings)

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.verify, self.expire, self.seal]

    @activity.defn(name=VERIFY_UPLOAD_ACTIVITY)
    @classify_errors
    def verify(self, request: VerifyUploadInput) -> VerifiedUpload:
        """The object exists, is within the byte limit, and its header is an allowed image.

        One ranged GET: the header checked, the size and the ETag all come from the same
        version of the object, and the ETag is what the seal later copies.
        """
        try:
            head = self._storage.read_head(request.source_key, HEADER_BYTES)
        except ObjectMissingError as error:
            raise _refusal("nothing was uploaded to the link", ErrorCode.UPLOAD_MISSING) from error
        if head.size > self._max_bytes:
            raise _refusal(f"the file exceeds {self._max_bytes} bytes", ErrorCode.PAYLOAD_TOO_LARGE)
        try:
            info = identify(head.data, self._limits, complete=head.size <= len(head.data))
        except ImagingError as error:
            raise _refusal(str(error), error.code) from error
        self._records.mark_uploaded(
            uuid.UUID(request.image_id),
            info.format,
            info.width,
            info.height,
            head.size,
            request.fence,
        )
        return VerifiedUpload(head.etag, info.format)

    @activity.defn(name=SEAL_ORIGINAL_ACTIVITY)
    @classify_errors
    def seal(self, request: SealInput) -> None:
        """Copy the verified staged object to the sealed original, drop the staged one, and
        point the image at the sealed copy. Rerunning it changes nothing more."""
        if not request.etag:
            raise _refusal("the upload was never verified", ErrorCode.UPLOAD_CHANGED)
        try:
            self._storage.seal_copy(
                request.staging_key,
                request.original_key,
                request.etag,
                media_type_for(request.format),
            )
        except (ObjectChangedError, ObjectMissingError) as error:
            # A rerun finds the staged object gone, or replaced by a late POST: fine when
            # an earlier attempt sealed the verified version already.
            if not self._storage.sealed_from(request.original_key, request.etag):
                code = (
                    ErrorCode.UPLOAD_CHANGED
                    if isinstance(error, ObjectChangedError)
                    else ErrorCode.SOURCE_MISSING
                )
                raise _refusal("the upload changed after it was verified", code) from error
        self._storage.delete(request.staging_key)
        self._records.seal_original(
            uuid.UUID(request.image_id), request.staging_key, request.original_key
        )

    @activity.defn(name=EXPIRE_UPLOAD_ACTIVITY)
    @classify_errors
    def expire(self, request: ExpireUploadInput) -> None:
        """No confirmation came in time: drop any late object and end the image.

        A stale attempt (the image went on under a later fence) is refused before it
        deletes anything.
        """
        image_id = uuid.UUID(request.image_id)
        self._records.set_error(
            image_id,
            ErrorCode.UPLOAD_EXPIRED,
            "no upload was confirmed before the link expired",
            request.fence,
        )
        # Under the image's lock: a run that a reset started meanwhile keeps its upload.
        with self._records.while_still_failed(image_id, request.fence) as expired:
            if expired:
                self._storage.delete(request.source_key)
        activity.logger.info("expired upload link of %s (%s)", request.image_id, ImageState.ERROR)


def _refusal(message: str, code: str) -> ApplicationError:
    return ApplicationError(message, type=code, non_retryable=True)

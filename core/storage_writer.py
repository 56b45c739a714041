"""Streaming one upload to one object, holding at most one multipart part in memory."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from core.storage import Storage

# S3 requires every multipart part but the last to be at least 5 MiB.
PART_SIZE = 8 * 1024 * 1024


class StreamingWriter:
    """Writes a stream to one object while holding at most one part in memory.

    Small objects go up with a single PUT; larger ones become a multipart upload. `append`
    is cheap and never does I/O, so async callers can run only `flush_part`, `complete`
    and `abort` in a thread.
    """

    def __init__(
        self,
        storage: Storage,
        key: str,
        content_type: str,
        cache_control: str,
        content_disposition: str = "inline",
    ) -> None:
        self._storage = storage
        self.key = key
        self._content_type = content_type
        self._cache_control = cache_control
        self._disposition = content_disposition
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._digest = hashlib.sha256()
        self.bytes_written = 0
        # The stored object's ETag, once `complete` has stored it.
        self.etag: str | None = None

    def append(self, chunk: bytes) -> bool:
        """Buffer a chunk; True when a full part is ready for `flush_part`."""
        self._buffer.extend(chunk)
        self._digest.update(chunk)
        self.bytes_written += len(chunk)
        return len(self._buffer) >= PART_SIZE

    def describe(self, content_type: str) -> None:
        """The stored object's type, once the caller knows it: before the first
        `flush_part` or `complete`, which is when it is sent. Saying it again is harmless."""
        if content_type == self._content_type:
            return
        if self._upload_id is not None or self.etag is not None:
            raise RuntimeError(f"{self.key} is already being written")
        self._content_type = content_type

    @property
    def sha256(self) -> str:
        """The hex digest of everything appended so far."""
        return self._digest.hexdigest()

    def flush_part(self) -> None:
        client, bucket = self._storage.client, self._storage.bucket
        if self._upload_id is None:
            created = client.create_multipart_upload(
                Bucket=bucket,
                Key=self.key,
                ContentType=self._content_type,
                CacheControl=self._cache_control,
                ContentDisposition=self._disposition,
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        part = client.upload_part(
            Bucket=bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": part["ETag"], "PartNumber": number})
        self._buffer.clear()

    def complete(self) -> None:
        client, bucket = self._storage.client, self._storage.bucket
        if self._upload_id is None:
            put = client.put_object(
                Bucket=bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
                CacheControl=self._cache_control,
                ContentDisposition=self._disposition,
            )
            self._buffer.clear()
            self.etag = put["ETag"]
            return
        if self._buffer:
            self.flush_part()
        completed = client.complete_multipart_upload(
            Bucket=bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self.etag = completed["ETag"]

    def abort(self) -> None:
        """Drop whatever was written; safe to call at any point."""
        self._buffer.clear()
        client, bucket = self._storage.client, self._storage.bucket
        if self._upload_id is not None:
            client.abort_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self._upload_id)
        else:
            client.delete_object(Bucket=bucket, Key=self.key)

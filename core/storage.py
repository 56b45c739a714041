"""S3-compatible object storage: one injected client per process, plus a presigning client.

Links are signed for the public endpoint with a second client, because MinIO and SeaweedFS
sign the host: rewriting the host of a signed URL afterwards breaks the signature.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from core.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

DERIVATIVE_CACHE_CONTROL = "public, max-age=31536000, immutable"
ORIGINAL_CACHE_CONTROL = "private, max-age=3600"
# S3 requires every multipart part but the last to be at least 5 MiB.
PART_SIZE = 8 * 1024 * 1024
DOWNLOAD_CHUNK_SIZE = 1024 * 1024


class ObjectMissingError(Exception):
    """The requested object does not exist."""


def make_s3_client(settings: Settings, endpoint_url: str | None = None) -> S3Client:
    secret = settings.s3_secret_access_key
    config = Config(
        signature_version="s3v4",
        # Over plain HTTP botocore would also SHA-256 every uploaded byte for the
        # signature; over HTTPS it never does. Bodies keep their CRC32 checksum either way.
        s3={  # type: ignore[arg-type]
            "addressing_style": settings.s3_addressing_style,
            "payload_signing_enabled": False,
        },
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=max(10, settings.worker_max_concurrent_activities * 4),
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint_url or settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=config,
    )
    return client


class Storage:
    """The bucket the service owns, with the operations the api and activities need."""

    def __init__(
        self, client: S3Client, presign_client: S3Client, bucket: str, link_expiry_seconds: int
    ) -> None:
        self.client = client
        self._presign_client = presign_client
        self.bucket = bucket
        self._link_expiry_seconds = link_expiry_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        client = make_s3_client(settings)
        presign_client = make_s3_client(settings, settings.s3_public_endpoint_url)
        return cls(client, presign_client, settings.s3_bucket, settings.link_expiry_seconds)

    def ping(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def upload_file(self, key: str, path: Path, content_type: str, cache_control: str) -> None:
        self.client.upload_file(
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "CacheControl": cache_control},
        )

    def put_bytes(self, key: str, data: bytes, content_type: str, cache_control: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl=cache_control,
        )

    def download_file(self, key: str, path: Path) -> None:
        """One GET streamed to `path`: the transfer manager would add a HEAD and a thread
        pool per call, which costs more than it saves for objects of a few megabytes."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if _is_not_found(error):
                raise ObjectMissingError(key) from error
            raise
        with body, path.open("wb") as file:
            for chunk in body.iter_chunks(DOWNLOAD_CHUNK_SIZE):
                file.write(chunk)

    def size_of(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                raise ObjectMissingError(key) from error
            raise
        return head["ContentLength"]

    def read_head(self, key: str, length: int) -> bytes:
        """The first `length` bytes of an object, enough to identify an image."""
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}"
            )
        except ClientError as error:
            if _is_not_found(error):
                raise ObjectMissingError(key) from error
            raise
        return response["Body"].read()

    def presign_post(
        self, key: str, max_bytes: int, expires_in: int, content_type: str
    ) -> tuple[str, dict[str, str]]:
        """A browser-usable POST form for one key, limited in size and to image types."""
        form = self._presign_client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                ["content-length-range", 1, max_bytes],
                ["starts-with", "$Content-Type", "image/"],
            ],
            ExpiresIn=expires_in,
        )
        return form["url"], {name: str(value) for name, value in form["fields"].items()}

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def list_pages(self, prefix: str, page_size: int) -> Iterator[list[tuple[str, datetime]]]:
        """Every object under `prefix` as `(key, last_modified)`, one page at a time."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
        )
        for page in pages:
            yield [(item["Key"], item["LastModified"]) for item in page.get("Contents", [])]

    def delete_many(self, keys: Sequence[str]) -> list[str]:
        """Delete keys with `delete_objects`, 1000 per call; answer the keys S3 refused."""
        refused: list[str] = []
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            refused.extend(error.get("Key", "") for error in response.get("Errors", []))
        return refused

    def list_multipart_upload_pages(
        self, page_size: int
    ) -> Iterator[list[tuple[str, str, datetime]]]:
        """Every unfinished multipart upload as `(key, upload_id, initiated)`, by page."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self.bucket, PaginationConfig={"PageSize": page_size})
        for page in pages:
            yield [
                (upload["Key"], upload["UploadId"], upload["Initiated"])
                for upload in page.get("Uploads", [])
            ]

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False when it had already ended."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") == "NoSuchUpload":
                return False
            raise
        return True

    def presign_get(self, key: str) -> str:
        return self._presign_client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self._link_expiry_seconds,
        )

    def open_writer(self, key: str, content_type: str, cache_control: str) -> StreamingWriter:
        return StreamingWriter(self, key, content_type, cache_control)


def _is_not_found(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    return code in {"404", "NoSuchKey", "NotFound"}


class StreamingWriter:
    """Writes a stream to one object while holding at most one part in memory.

    Small objects go up with a single PUT; larger ones become a multipart upload. `append`
    is cheap and never does I/O, so async callers can run only `flush_part`, `complete`
    and `abort` in a thread.
    """

    def __init__(self, storage: Storage, key: str, content_type: str, cache_control: str) -> None:
        self._storage = storage
        self.key = key
        self._content_type = content_type
        self._cache_control = cache_control
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._digest = hashlib.sha256()
        self.bytes_written = 0

    def append(self, chunk: bytes) -> bool:
        """Buffer a chunk; True when a full part is ready for `flush_part`."""
        self._buffer.extend(chunk)
        self._digest.update(chunk)
        self.bytes_written += len(chunk)
        return len(self._buffer) >= PART_SIZE

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
            client.put_object(
                Bucket=bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
                CacheControl=self._cache_control,
            )
            self._buffer.clear()
            return
        if self._buffer:
            self.flush_part()
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        """Drop whatever was written; safe to call at any point."""
        self._buffer.clear()
        client, bucket = self._storage.client, self._storage.bucket
        if self._upload_id is not None:
            client.abort_multipart_upload(Bucket=bucket, Key=self.key, UploadId=self._upload_id)
        else:
            client.delete_object(Bucket=bucket, Key=self.key)

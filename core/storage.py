"""S3-compatible object storage: one injected client per process, plus a presigning client.

Links are signed for the public endpoint with a second client, because MinIO and SeaweedFS
sign the host: rewriting the host of a signed URL afterwards breaks the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from core.settings import Settings
from core.storage_writer import PART_SIZE as PART_SIZE  # the upload part size, for benches
from core.storage_writer import StreamingWriter

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime
    from hashlib import _Hash as Hash

    from mypy_boto3_s3.client import S3Client

DERIVATIVE_CACHE_CONTROL = "public, max-age=31536000, immutable"
ORIGINAL_CACHE_CONTROL = "private, max-age=3600"
DOWNLOAD_CHUNK_SIZE = 1024 * 1024


# Set on a sealed original: the ETag of the verified staged object it was copied from
# (S3 itself may give a copy of a multipart object another ETag).
VERIFIED_ETAG_METADATA = "verified-etag"
ATTACHMENT = "attachment"


class ObjectMissingError(Exception):
    """The requested object does not exist."""


class ObjectChangedError(Exception):
    """The object is no longer the version a precondition named (its ETag differs)."""


@dataclass(frozen=True)
class ObjectHead:
    """The first bytes of an object, with the ETag and size of that very version."""

    data: bytes
    etag: str
    size: int


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

    def download_file(self, key: str, path: Path, digest: Hash | None = None) -> None:
        """One GET streamed to `path`: the transfer manager would add a HEAD and a thread
        pool per call, which costs more than it saves for objects of a few megabytes.

        `digest` is fed each chunk as it streams, so hashing needs no second read."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if _is_not_found(error):
                raise ObjectMissingError(key) from error
            raise
        with body, path.open("wb") as file:
            for chunk in body.iter_chunks(DOWNLOAD_CHUNK_SIZE):
                file.write(chunk)
                if digest is not None:
                    digest.update(chunk)

    def size_of(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                raise ObjectMissingError(key) from error
            raise
        return head["ContentLength"]

    def read_head(self, key: str, length: int) -> ObjectHead:
        """The first `length` bytes of an object, enough to identify an image, in one GET
        that also says which version of the object they are from (ETag) and its size."""
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}"
            )
        except ClientError as error:
            if _is_not_found(error):
                raise ObjectMissingError(key) from error
            raise
        data = response["Body"].read()
        content_range = response.get("ContentRange", "")  # "bytes 0-N/TOTAL"
        size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(data)
        return ObjectHead(data, response["ETag"], size)

    def presign_post(
        self, key: str, max_bytes: int, expires_in: int, content_type: str
    ) -> tuple[str, dict[str, str]]:
        """A browser-usable POST form for one key, limited in size and to exactly
        `content_type` (one of the allowlist's), so no client can store an SVG or HTML."""
        form = self._presign_client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                ["content-length-range", 1, max_bytes],
                ["eq", "$Content-Type", content_type],
            ],
            ExpiresIn=expires_in,
        )
        return form["url"], {name: str(value) for name, value in form["fields"].items()}

    def seal_copy(self, source: str, target: str, etag: str, content_type: str) -> None:
        """Copy `source` to `target` server-side, only if `source` is still the version
        `etag` names; the copy is served as an attachment of `content_type`."""
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceIfMatch=etag,
                MetadataDirective="REPLACE",
                ContentType=content_type,
                ContentDisposition=ATTACHMENT,
                CacheControl=ORIGINAL_CACHE_CONTROL,
                Metadata={VERIFIED_ETAG_METADATA: etag.strip('"')},
            )
        except ClientError as error:
            if _is_not_found(error):
                raise ObjectMissingError(source) from error
            if error.response.get("Error", {}).get("Code") in {"PreconditionFailed", "412"}:
                raise ObjectChangedError(source) from error
            raise

    def sealed_from(self, key: str, etag: str) -> bool:
        """Whether `key` is a sealed copy of the object version `etag` names."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                return False
            raise
        return bool(head.get("Metadata", {}).get(VERIFIED_ETAG_METADATA) == etag.strip('"'))

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

    def presign_get(self, key: str, content_type: str, *, attachment: bool = False) -> str:
        """A link that S3 serves with `content_type` (and as a download, for originals),
        whatever type the object was stored with."""
        params = {"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type}
        if attachment:
            params["ResponseContentDisposition"] = ATTACHMENT
        return self._presign_client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=self._link_expiry_seconds
        )

    def open_writer(
        self, key: str, content_type: str, cache_control: str, content_disposition: str = "inline"
    ) -> StreamingWriter:
        return StreamingWriter(self, key, content_type, cache_control, content_disposition)


def _is_not_found(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    return code in {"404", "NoSuchKey", "NotFound"}

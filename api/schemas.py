"""API schemas (what clients send and receive), apart from the ORM models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.contracts import MAX_PROJECT_ID, ImageState

# The image document lives in core (the webhook activities send it too).
from core.documents import ImageError as ImageError
from core.documents import ImagePublic as ImagePublic
from core.documents import ImageSummary as ImageSummary
from core.documents import ProgressPublic as ProgressPublic
from core.documents import VersionPublic as VersionPublic


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unsupported_format"])
    message: str


class ErrorPublic(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error answers, each with the one error body."""
    return {status: {"model": ErrorPublic} for status in statuses}


class ImageAccepted(BaseModel):
    image_id: uuid.UUID
    project_id: int
    state: ImageState
    workflow_id: str
    status_url: str
    # Set when the upload was an exact duplicate (dedupe on): this is the earlier image.
    duplicate_of: uuid.UUID | None = None


class ProjectSettingsPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: `0` or "no" is not a boolean to the document, so not to us either.
    dedupe: bool = Field(default=False, strict=True)


class ImageLinkCreate(BaseModel):
    # An unknown field is a client's mistake (or a probe): 422, never silently ignored.
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=1024, examples=["holiday.jpg"])
    # Lax on purpose: existing clients may send "7"; see tests/e2e/schemathesis.toml.
    project_id: int = Field(ge=1, le=MAX_PROJECT_ID, json_schema_extra={"format": "int64"})


class ImageUploadLink(BaseModel):
    """A presigned S3 POST: send `params` as form fields, then the file as `file`."""

    image_id: uuid.UUID
    project_id: int
    state: ImageState
    upload_link: str
    params: dict[str, str]
    expires_at: datetime
    max_bytes: int
    workflow_id: str
    status_url: str
    confirm_url: str


class ProjectImagesPublic(BaseModel):
    images: list[ImageSummary]
    limit: int
    offset: int
    total: int
    # Pass as `?cursor=` for the page after this one; null on the last page.
    next_cursor: str | None = None


class ProjectPublic(BaseModel):
    project_id: int
    counts: dict[ImageState, int]
    total: int
    images: list[ImagePublic]
    next_cursor: str | None = None


class HealthPublic(BaseModel):
    status: str


class ReadinessPublic(BaseModel):
    status: str
    checks: dict[str, str]


class WsTokenPublic(BaseModel):
    """A short-lived token for `/ws/projects/{project_id}`, passed as `?token=`.

    `token` is null when the API is open and has no WS_TOKEN_SECRET: no token is needed.
    """

    token: str | None
    expires_at: datetime | None
    ws_url: str

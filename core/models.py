"""SQLAlchemy ORM models. API schemas live apart, in `api/schemas.py`.

Projects have no table: a project is the integer key its images share, and it exists as
soon as its first image does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.contracts import ImageState

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATE_VALUES = ", ".join(f"'{s.value}'" for s in ImageState)


class ImageStateType(TypeDecorator[ImageState]):
    """The state column: `ImageState` in Python, its value in a VARCHAR(16) (the CHECK
    constraint keeps the set), so no code converts between `.value` and strings."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else ImageState(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> ImageState | None:
        return None if value is None else ImageState(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        CheckConstraint(f"state IN ({STATE_VALUES})", name="state"),
        # The keyset order of a project's listing, walked in either direction.
        Index("ix_images_project_id_created_at_id", "project_id", "created_at", "id"),
        Index("ix_images_project_id_content_sha256", "project_id", "content_sha256"),
        # Postgres treats NULLs as distinct, so only keyed uploads are constrained.
        UniqueConstraint(
            "project_id", "idempotency_key", name="uq_images_project_id_idempotency_key"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[ImageState] = mapped_column(ImageStateType())
    source_key: Mapped[str] = mapped_column(String(512))
    original_filename: Mapped[str | None] = mapped_column(String(255))
    format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # The fence of the newest activity that wrote the state (see core/fencing.py): a write
    # scheduled earlier is refused, so a stale attempt cannot undo what a newer one decided.
    fence_token: Mapped[int] = mapped_column(BigInteger, server_default="0")
    fence_run_id: Mapped[str | None] = mapped_column(String(64))
    # What the keyed request carried (sha256 of the file, or of the link request), so a
    # key reused for something else is refused instead of answered with the wrong image.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # Facts (core.facts): the SHA-256 of the original bytes, taken while they stream in,
    # and placeholders, colours and a 64-bit perceptual hash from the prepared copy.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    blurhash: Mapped[str | None] = mapped_column(String(64))
    thumbhash: Mapped[str | None] = mapped_column(String(64))
    dominant_color: Mapped[str | None] = mapped_column(String(7))
    average_color: Mapped[str | None] = mapped_column(String(7))
    # Signed 64-bit two's complement of the unsigned hash, so Postgres can XOR and count bits.
    phash: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    versions: Mapped[list[Version]] = relationship(
        back_populates="image", cascade="all, delete-orphan", passive_deletes=True
    )


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("image_id", "name", "format", name="uq_versions_image_id_name_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(512))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(64))
    # `auto` (JPEG/PNG), `webp` or `avif` (core.presets.OutputFormat).
    format: Mapped[str] = mapped_column(String(8), server_default="auto")
    # What it was made with (`Preset.spec`): a row whose spec differs from the project's
    # current preset is outdated, and a reprocess renders it again.
    spec: Mapped[str | None] = mapped_column(String(64))
    # The fence of the resize that wrote this row; only a newer one may replace it.
    fence_token: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    image: Mapped[Image] = relationship(back_populates="versions")


class PendingObject(Base):
    """A derivative object that no version row may point at yet, or any more.

    A resize records its key here before it writes the object, and removes it in the
    transaction that makes a version row point at it. What stays behind (a refused stale
    attempt, a crash between the write and the row, an object a newer one superseded, the
    versions of a failed image) is deleted by the staging cleanup: no listing of the bucket.
    """

    __tablename__ = "pending_objects"
    __table_args__ = (
        Index("ix_pending_objects_created_at", "created_at"),
        Index("ix_pending_objects_delete_after", "delete_after"),
    )

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    image_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Set for an object a committed row stopped naming (superseded, or its preset removed):
    # links to it may be out until then (`core.link_lifetime`). NULL for an attempt's own
    # object, never linked, which the sweep takes once older than its threshold.
    delete_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProjectPresets(Base):
    """One version of a project's preset set (`core.preset_sets`); the highest is current."""

    __tablename__ = "project_presets"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    presets: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A key created by `python -m admin.keys`; only the sha256 of the key is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # A key is scoped to every project, or to a non-empty list of them.
        CheckConstraint("all_projects OR cardinality(projects) > 0", name="scope"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(255))
    all_projects: Mapped[bool] = mapped_column(Boolean)
    projects: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Optional: the key is refused from then on, as if revoked.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UploadWindow(Base):
    """Uploads counted per key per minute (fixed windows), shared by every API process."""

    __tablename__ = "upload_windows"

    key_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    uploads: Mapped[int] = mapped_column(Integer)


class WorkerBeat(Base):
    """The last sign of life of each worker process, by its own render queue.

    A worker writes it every second. The workflow asks for it when a resize has waited
    long on that queue: a busy worker beats, a dead or frozen one does not.
    """

    __tablename__ = "worker_beats"

    render_queue: Mapped[str] = mapped_column(String(255), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProjectStateCount(Base):
    """Images per (project, state), kept by the `images_count_*` triggers (migration 0007)
    in the statement that changes `images`: never written by the application."""

    __tablename__ = "project_state_counts"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger)


class EventLog(Base):
    """Every published event, append-only and pruned, for WebSocket clients that resume."""

    __tablename__ = "event_log"
    __table_args__ = (
        Index("ix_event_log_project_id_id", "project_id", "id"),
        Index("ix_event_log_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    payload: Mapped[str] = mapped_column(Text)


class WebhookEndpoint(Base):
    """A URL a project's events are posted to. The secret signs them (Standard Webhooks)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_project_id", "project_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(BigInteger)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    # Kept as is: every delivery signs with it. Shown to the client only at creation and
    # rotation, never in a list answer or a log line.
    secret: Mapped[str] = mapped_column(String(128))
    # The secret the last rotation replaced: deliveries are signed with it too, next to
    # `secret`, until `previous_secret_expires_at` (a receiver switches without a gap).
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    # Why it was turned off: `disabled` (by a client) or `gone` (the receiver answered 410).
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class WebhookDelivery(Base):
    """One event for one endpoint (the outbox row), and what its attempts got."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_image_id", "image_id"),
    )

    # Deterministic (`core.webhooks.contracts.delivery_id_for`): it is also the
    # `webhook-id` header receivers dedupe on.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    project_id: Mapped[int] = mapped_column(BigInteger)
    image_id: Mapped[uuid.UUID | None] = mapped_column()
    run_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # Manual redeliveries so far; each runs its own workflow (`...-r<n>`).
    redeliveries: Mapped[int] = mapped_column(Integer, server_default="0")
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(255))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # At most WEBHOOK_RESPONSE_BODY_BYTES (1 KiB) of the receiver's last answer.
    response_body: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProjectSettings(Base):
    """Per-project options; a project without a row has every default."""

    __tablename__ = "project_settings"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Answer an upload whose bytes equal a `done` image of this project with that image.
    dedupe: Mapped[bool] = mapped_column(Boolean, server_default="false")

"""One fail-fast settings object, read from the environment (or a `.env` file).

Settings are built by `get_settings()`, never at import time, so tests and entry points
can construct their own with overrides.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.settings_security import SecuritySettings

DEFAULT_LOCAL_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/imgproc"


class Settings(SecuritySettings):
    """Every setting the api and the worker read. Names are the env variable names."""

    # hide_input_in_errors: a refused value (a key, a URL with a password) never reaches
    # a log or a terminal; the error names the setting only.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # Database
    # A plain string: unix-socket URLs (`postgresql+psycopg://postgres@/db?host=/run/pg`)
    # have no host, which pydantic's PostgresDsn rejects.
    database_url: str = DEFAULT_LOCAL_DATABASE_URL
    database_pool_size: Annotated[int, Field(ge=1, le=100)] = 5

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "image-processing"
    # A remote cluster or Temporal Cloud: TLS, with a client certificate (mTLS) or an API
    # key. Any of the paths or the key turns TLS on; TEMPORAL_TLS alone uses the system CAs.
    temporal_tls: bool = False
    temporal_tls_cert_path: FilePath | None = None
    temporal_tls_key_path: FilePath | None = None
    # Only for a server whose certificate is not signed by a CA the system trusts.
    temporal_tls_ca_path: FilePath | None = None
    temporal_api_key: SecretStr | None = None

    @field_validator(
        "temporal_tls_cert_path",
        "temporal_tls_key_path",
        "temporal_tls_ca_path",
        "temporal_api_key",
        "link_secret",
        mode="before",
    )
    @classmethod
    def _empty_temporal_credential_is_unset(cls, value: object) -> object:
        # `KEY=` in an env file or an empty secret means "not set", not "a file named ''"
        # or "an empty API key" (which would also turn TLS on).
        return None if value == "" else value

    @model_validator(mode="after")
    def _temporal_client_cert_is_paired(self) -> Self:
        # A certificate without its key (or the reverse) would only fail at connect time,
        # possibly as a confusing handshake error: refuse it at start instead.
        if (self.temporal_tls_cert_path is None) != (self.temporal_tls_key_path is None):
            raise ValueError(
                "TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together"
            )
        return self

    @property
    def temporal_tls_enabled(self) -> bool:
        return self.temporal_tls or any(
            value is not None
            for value in (
                self.temporal_tls_cert_path,
                self.temporal_tls_ca_path,
                self.temporal_api_key,
            )
        )

    # S3
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_bucket: str = "images"
    s3_addressing_style: str = "path"
    link_expiry_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 3600
    # Signs the `/links/...` URLs of listings (api/status/links.py); every API process must share
    # it. Unset: derived from WS_TOKEN_SECRET (required with keys), else the S3 secret.
    link_secret: SecretStr | None = None

    # Attempts per activity before a transient fault (S3 or Postgres down) ends an image
    # in `error`; with exponential backoff capped at 30 s, 12 attempts span ~4 minutes.
    activity_max_attempts: Annotated[int, Field(ge=1, le=100)] = 12

    # Worker
    worker_max_concurrent_activities: Annotated[int, Field(ge=1, le=256)] = 4
    worker_graceful_shutdown_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    # Decoded copies a worker holds for its pending resizes (about 14 MB per image fitted
    # to 2500x1875 RGB); beyond this the oldest are dropped and their images re-prepared.
    worker_working_copies_mb: Annotated[int, Field(ge=16)] = 1024
    # Run workflow code in Temporal's sandbox (see worker.workflow_runner for the cost).
    worker_workflow_sandbox: bool = False
    # Threads inside each libvips operation; parallelism comes from concurrent activities.
    worker_vips_threads: Annotated[int, Field(ge=1, le=64)] = 1

    # Image processing
    jpeg_quality: Annotated[int, Field(ge=1, le=95)] = 85
    # libvips' AV1 effort, 0 (fastest) to 9: the CPU an AVIF derivative may cost
    # (docs/benchmarks.md, "Output formats").
    avif_effort: Annotated[int, Field(ge=0, le=9)] = 2
    # libwebp's method, 0 (fastest) to 6: 0 costs a quarter of libvips' default (4) for
    # bytes within a few percent (docs/benchmarks.md, "Output formats").
    webp_effort: Annotated[int, Field(ge=0, le=6)] = 0
    # Images a project's reprocess renders at once, and per page of its walk: bounded so
    # live uploads keep their latency while a project is rendered again.
    reprocess_concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    reprocess_page_size: Annotated[int, Field(ge=1, le=1000)] = 50
    # Reprocess images one worker process renders at once, all projects together (their own
    # task queue and slots, apart from live uploads' `WORKER_MAX_CONCURRENT_ACTIVITIES`).
    reprocess_worker_slots: Annotated[int, Field(ge=1, le=64)] = 1
    max_upload_bytes: Annotated[int, Field(ge=1)] = 50 * 1024 * 1024
    max_megapixels: Annotated[float, Field(gt=0)] = 50.0
    max_side_px: Annotated[int, Field(ge=1)] = 16384
    max_frames: Annotated[int, Field(ge=1)] = 1000
    # Metadata is refused beyond these sizes, before it is parsed (EXIF) or applied (ICC).
    # A JPEG holds at most 64 KiB of EXIF; Photoshop's CMYK profiles reach about 560 KiB.
    max_exif_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    max_icc_bytes: Annotated[int, Field(ge=1024)] = 768 * 1024

    # Upload links
    upload_link_expiry_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 3600
    # A POST that S3 accepted just before expiry may still be confirmed this much later.
    upload_confirm_grace_seconds: Annotated[int, Field(ge=0, le=24 * 3600)] = 300

    # API
    # GET /images/{id} asks the running workflow for live progress, at most this long.
    status_query_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 1.0
    log_level: str = "INFO"

    # Staging cleanup (the `staging-cleanup` Temporal Schedule, created by the workers)
    cleanup_interval_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 3600
    # Only staging objects older than this are removed. It must exceed the longest direct
    # upload plus the API's insert after it: S3 may date a multipart object by when its
    # upload began, and the row is written only once the upload is complete. A day matches
    # the usual "abort incomplete multipart uploads after 1 day" lifecycle rule.
    cleanup_orphan_age_seconds: Annotated[int, Field(ge=3600)] = 24 * 3600
    # An image still `init` or `uploaded` this long after its row was inserted, whose
    # workflow does not exist, is started by the cleanup (its API process died in between).
    # It must exceed the longest an intake takes from its insert to its start.
    cleanup_lost_image_age_seconds: Annotated[int, Field(ge=60)] = 600

    # Observability
    # "json": one object per line with image_id, project_id and workflow_id (for collectors).
    log_format: Literal["json", "text"] = "text"
    # Where the worker's /metrics servers listen; compose sets 0.0.0.0.
    metrics_bind_host: str = "127.0.0.1"
    # The worker's app metrics (prometheus_client); None = off.
    worker_metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    # The Temporal SDK's own Prometheus endpoint, which the SDK's core serves itself, so it
    # needs a port of its own; None = off.
    worker_sdk_metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    # GET /metrics counts images by state with one query, cached this long between scrapes.
    metrics_state_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0

    # Webhooks (docs/webhooks.md)
    # Plain-http receiver URLs; off, only https ones are accepted and delivered to.
    webhook_allow_http: bool = False
    # Deliver to private, loopback, link-local, CGNAT and metadata addresses. Only the
    # devstack and the tests turn it on: on a server it lets a client probe the network.
    webhook_allow_private_networks: bool = False
    # A delivery is retried with exponential backoff for this long (3 days), then given up.
    webhook_retry_period_seconds: Annotated[float, Field(ge=1, le=30 * 24 * 3600)] = 3 * 24 * 3600
    webhook_initial_retry_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    webhook_max_retry_interval_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 3600.0
    # Attempts one worker process runs at once, on the delivery queue's own slots.
    webhook_max_concurrent_deliveries: Annotated[int, Field(ge=1, le=256)] = 16
    webhook_max_payload_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024
    webhook_max_endpoints_per_project: Annotated[int, Field(ge=1, le=100)] = 10
    # Every worker looks this often for deliveries recorded but never started (the process
    # died between the commit and the start, and nothing retried it), older than the age.
    webhook_relay_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    webhook_relay_age_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 120.0

    @field_validator("database_url")
    @classmethod
    def _require_psycopg_driver(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            # Not the parser's message: it quotes the URL, password and all.
            raise ValueError("DATABASE_URL is not a database URL") from None
        # A bare postgresql:// would make SQLAlchemy look for psycopg2, which we do not ship.
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        if url.drivername != "postgresql+psycopg":
            raise ValueError("DATABASE_URL must use postgresql:// or postgresql+psycopg://")
        return url.render_as_string(hide_password=False)

    @field_validator("s3_addressing_style")
    @classmethod
    def _known_addressing_style(cls, value: str) -> str:
        if value not in {"path", "virtual", "auto"}:
            raise ValueError("S3_ADDRESSING_STYLE must be path, virtual or auto")
        return value

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, validated on first use."""
    return Settings()

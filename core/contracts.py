"""Plain data contracts shared by the api, the workflow and the activities.

Only the standard library is imported here, so the workflow sandbox can load this module.
One input dataclass per workflow and activity: fields can be added (with defaults) without
breaking workflows that are already running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.presets import Preset

WORKFLOW_NAME = "ImageProcessingWorkflow"

# Activities are called by name, so the workflow never imports their implementations.
PREPARE_ACTIVITY = "prepare_image"
RESIZE_ACTIVITY = "resize_image"
FINISH_ACTIVITY = "finish_image"
FAIL_ACTIVITY = "fail_image"
DISCARD_ACTIVITY = "discard_objects"
VERIFY_UPLOAD_ACTIVITY = "verify_upload"
EXPIRE_UPLOAD_ACTIVITY = "expire_upload"
SEAL_ORIGINAL_ACTIVITY = "seal_original"
RENDER_QUEUE_ALIVE_ACTIVITY = "render_queue_alive"

# The update a client's upload confirmation becomes.
CONFIRM_UPLOAD_UPDATE = "confirm_upload"
STATUS_QUERY = "status"


class ImageState(StrEnum):
    INIT = "init"
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    DONE = "done"
    ERROR = "error"


class ErrorCode(StrEnum):
    """Stable codes stored on failed images and used as `ApplicationError.type`."""

    INVALID_IMAGE = "invalid_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    IMAGE_TOO_LARGE = "image_too_large"
    TOO_MANY_FRAMES = "too_many_frames"
    METADATA_TOO_LARGE = "metadata_too_large"
    SOURCE_MISSING = "source_missing"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UPLOAD_MISSING = "upload_missing"
    UPLOAD_EXPIRED = "upload_expired"
    # The staged upload is no longer the object that was verified (a later POST to its link).
    UPLOAD_CHANGED = "upload_changed"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    PROCESSING_FAILED = "processing_failed"
    # Internal: the worker holding an image's decoded copy is gone, or dropped it. The
    # workflow prepares the image again; an image's error never says this.
    WORKING_COPY_LOST = "working_copy_lost"
    # Internal: a write was refused because something scheduled later (or a newer run)
    # already wrote the image (see core/fencing.py). A stale attempt raises it, and
    # Temporal discards its outcome anyway; a current one only after an operator reset
    # to an event with activities pending, and the workflow then prepares again.
    SUPERSEDED = "superseded"


NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = (
    ErrorCode.INVALID_IMAGE,
    ErrorCode.UNSUPPORTED_FORMAT,
    ErrorCode.IMAGE_TOO_LARGE,
    ErrorCode.TOO_MANY_FRAMES,
    ErrorCode.METADATA_TOO_LARGE,
    ErrorCode.SOURCE_MISSING,
    ErrorCode.PAYLOAD_TOO_LARGE,
    ErrorCode.UPLOAD_MISSING,
    ErrorCode.UPLOAD_EXPIRED,
    ErrorCode.UPLOAD_CHANGED,
    ErrorCode.WORKING_COPY_LOST,
    ErrorCode.SUPERSEDED,
)


# Retryable: what an image's error says once its bounded retries are spent.
TRANSIENT_ERROR_TYPES: tuple[str, ...] = (
    ErrorCode.STORAGE_UNAVAILABLE,
    ErrorCode.DATABASE_UNAVAILABLE,
)
# Failures that are no verdict on the image: its upload is kept (unlinked), and an
# operator's `temporal workflow reset` may take the image up again where it stopped.
RESUMABLE_ERROR_TYPES: tuple[str, ...] = (*TRANSIENT_ERROR_TYPES, ErrorCode.PROCESSING_FAILED)
DEFAULT_MAX_ATTEMPTS = 12


def workflow_id_for(image_id: str) -> str:
    return f"image-{image_id}"


# Project ids are Postgres BIGINTs: the one bound every check and schema uses. Schemas say
# `exclusiveMaximum: 2**63`, a bound that JSON's doubles hold exactly (2**63 - 1 is not).
MAX_PROJECT_ID = 2**63 - 1


# Object key spaces: uploads as they land, sealed originals, working copies.
STAGING_PREFIX = "staging/"
ORIGINALS_PREFIX = "originals/"
WORKING_PREFIX = "work/"


def staging_key_for(image_id: str) -> str:
    """Where an upload lands (a direct upload's stream, an upload link's POST), unverified.

    Never linked: the workflow seals it to `original_key_for` first. Server-made; the
    client's filename is never a key.
    """
    return f"{STAGING_PREFIX}{image_id}"


def original_key_for(image_id: str) -> str:
    """The sealed original: the verified bytes, copied by the workflow, which no client
    can write. Images uploaded before sealing existed were uploaded straight to this key."""
    return f"{ORIGINALS_PREFIX}{image_id}"


def working_key_for(image_id: str) -> str:
    return f"{WORKING_PREFIX}{image_id}/working"


def version_key_for(
    project_id: int, image_id: str, version: str, extension: str, fence: Fence, attempt: int
) -> str:
    """Each attempt writes an object of its own, named after what produced it, so a stale
    attempt can never overwrite the object a version row points at (docs/fencing.md)."""
    return f"{project_id}/{image_id}/{version}-{fence.token}-{attempt}.{extension}"


@dataclass
class Fence:
    """Orders the writes of an image's activities (see core/fencing.py and docs/fencing.md).

    `token` is the workflow's clock (`workflow.time_ns()`) when it scheduled the activity:
    deterministic, never lower in a later workflow task, and later than anything of the
    previous run after a reset. `run_id` is the run that scheduled it. Every attempt of one
    scheduled activity carries the same fence. The defaults (0, "") are what activities
    scheduled before fencing existed get: they are still held to forward-only states.
    """

    token: int = 0
    run_id: str = ""


@dataclass
class ImageProcessingInput:
    image_id: str
    project_id: int
    source_key: str
    # Upload-link flow: wait this long for the client's confirmation before expiring.
    awaiting_upload: bool = False
    upload_timeout_seconds: float = 0.0
    # Attempts per activity before a transient fault ends the image in `error`.
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # A direct upload's staged object as the API wrote and checked it; an upload link's
    # come from its verification instead. The seal copies exactly this object.
    source_etag: str | None = None
    source_format: str | None = None
    # The project's preset set when the upload was accepted (`core.preset_sets`), and its
    # version. Empty: the spec's four sizes, JPEG/PNG only (workflows started before
    # presets were data).
    presets: list[Preset] = field(default_factory=list)
    presets_version: int = 0


@dataclass
class ConfirmUploadInput:
    image_id: str


@dataclass
class UploadConfirmation:
    """The answer to a confirmation: `uploaded`, or `error` with the reason."""

    state: str
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class VerifyUploadInput:
    image_id: str
    source_key: str
    fence: Fence = field(default_factory=Fence)


@dataclass
class VerifiedUpload:
    """What `verify_upload` checked: the object (by its ETag) and its format."""

    etag: str
    format: str


@dataclass
class SealInput:
    """Copy the verified staged object to the sealed original, then drop the staged one."""

    image_id: str
    staging_key: str
    original_key: str
    etag: str
    format: str


@dataclass
class ExpireUploadInput:
    image_id: str
    source_key: str
    fence: Fence = field(default_factory=Fence)


@dataclass
class PrepareInput:
    image_id: str
    source_key: str
    working_key: str
    # The versions the preparing worker will render from the decoded copy it keeps in
    # memory. `working_key` no longer names an S3 object (the working copy through S3 was
    # retired with `render-where-prepared`); it stays on the wire, unused, while workers
    # of the release before may still decode this (drop it with that patch's step 3).
    render_versions: list[str] = field(default_factory=list)
    fence: Fence = field(default_factory=Fence)
    # What the copy must serve: it is kept at the largest size any of them needs. Empty:
    # the spec's four sizes.
    presets: list[Preset] = field(default_factory=list)


@dataclass
class PreparedImage:
    working_key: str
    width: int
    height: int
    format: str
    has_alpha: bool
    # The preparing worker's own task queue: renders of its in-memory copy run there.
    render_queue: str | None = None
    # Renders of other images that worker still had to do: this image's wait behind them.
    renders_queued: int = 0


@dataclass
class ResizeInput:
    image_id: str
    project_id: int
    version: str
    width: int
    height: int
    working_key: str
    # Always true since the S3 working copy was retired: kept on the wire, with
    # `working_key`, for workers of the release before (drop with step 3).
    from_memory: bool = False
    fence: Fence = field(default_factory=Fence)
    # `cover`: scale to this size first, then crop to (width, height); 0 means no crop.
    scaled_width: int = 0
    scaled_height: int = 0
    # The preset rendered (fit, gravity, formats, qualities). None: `auto` only, as every
    # resize scheduled before presets were data.
    preset: Preset | None = None


@dataclass
class RenderQueueCheck:
    """Is the worker behind this render queue alive (it beat within the last seconds)?"""

    render_queue: str


@dataclass
class ResizeResult:
    """One stored derivative; a resize answers its preset's first format, with the other
    formats it wrote in `more_formats`."""

    version: str
    key: str
    width: int
    height: int
    bytes: int
    content_type: str
    format: str = "auto"
    spec: str | None = None
    more_formats: list[ResizeResult] = field(default_factory=list)


@dataclass
class FinishInput:
    image_id: str
    fence: Fence = field(default_factory=Fence)


@dataclass
class FailureInput:
    image_id: str
    working_key: str
    code: str
    message: str
    # Set when the source itself was refused (upload-link flow): nothing of it is kept.
    source_key: str | None = None
    # The sealed original, set when the image failed for good (not a transient fault):
    # it is removed too, and an image in `error` links nothing.
    original_key: str | None = None
    fence: Fence = field(default_factory=Fence)


@dataclass
class DiscardInput:
    """Objects a failed image leaves behind."""

    keys: list[str] = field(default_factory=list)
    # The failure's fence, and the image it recorded: the upload and the sealed original
    # (`guarded_keys`) are only deleted while that failure is still the image's last word,
    # never once a reset has taken the image up again.
    fence: Fence = field(default_factory=Fence)
    image_id: str = ""
    guarded_keys: list[str] = field(default_factory=list)


@dataclass
class ImageProcessingResult:
    image_id: str
    state: str
    versions: list[ResizeResult] = field(default_factory=list)


@dataclass
class ProcessingStatus:
    """What the `status` query returns while the workflow runs."""

    state: str
    versions_done: list[str] = field(default_factory=list)
    versions_total: int = 0
    error_code: str | None = None


# --- Staging cleanup ----------------------------------------------------------------------
# A Temporal Schedule (`CLEANUP_SCHEDULE_ID`) starts `CleanupStagingWorkflow` periodically;
# it removes staging objects that never became (or no longer belong to) an image.

CLEANUP_WORKFLOW_NAME = "CleanupStagingWorkflow"
CLEANUP_SCHEDULE_ID = "staging-cleanup"
SWEEP_ORIGINALS_ACTIVITY = "sweep_orphan_originals"
SWEEP_WORKING_COPIES_ACTIVITY = "sweep_stale_working_copies"
ABORT_UPLOADS_ACTIVITY = "abort_stale_multipart_uploads"
SWEEP_PENDING_OBJECTS_ACTIVITY = "sweep_pending_objects"
START_LOST_IMAGES_ACTIVITY = "start_lost_images"
# An image still in its first state this long after its row was inserted, with no
# workflow, was registered by an API process that died before starting it.
LOST_IMAGE_AGE_SECONDS = 600

# The key spaces swept are those of `staging_key_for`, `original_key_for` and
# `working_key_for` (STAGING_PREFIX, ORIGINALS_PREFIX, WORKING_PREFIX above).
# Keys listed, looked up and deleted per batch; S3's own maximum per list and delete call.
CLEANUP_BATCH_SIZE = 1000


@dataclass
class CleanupInput:
    """Only objects (and multipart uploads) older than this are touched."""

    older_than_seconds: int
    batch_size: int = CLEANUP_BATCH_SIZE
    # Images older than this still `init` or `uploaded` with no workflow get theirs.
    lost_after_seconds: int = LOST_IMAGE_AGE_SECONDS


@dataclass
class SweepInput:
    older_than_seconds: int
    batch_size: int = CLEANUP_BATCH_SIZE
    # The pending sweep also takes superseded objects due within this many seconds from
    # now, as if run that much later. The schedule leaves it at 0; tests drive time with it.
    due_within_seconds: int = 0


@dataclass
class SweepResult:
    removed: int = 0
    # Objects S3 refused to delete; the next run tries them again.
    failed: int = 0


@dataclass
class CleanupResult:
    orphan_originals_deleted: int = 0
    stale_working_copies_deleted: int = 0
    multipart_uploads_aborted: int = 0
    failed: int = 0
    pending_objects_deleted: int = 0
    lost_images_started: int = 0

"""Plain data contracts of reprocessing: a project's images brought to its current presets.

Only the standard library is imported here, so the workflow sandbox can load this module.
One `ReprocessProjectWorkflow` per project (`reprocess_workflow_id`): a preset change, the
API and the CLI signal-with-start it, so a running one takes up the newer change and a
second never starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.contracts import Fence

REPROCESS_WORKFLOW_NAME = "ReprocessProjectWorkflow"
REPROCESS_IMAGE_WORKFLOW_NAME = "ReprocessImageWorkflow"
LIST_REPROCESS_PAGE_ACTIVITY = "list_reprocess_page"
REPROCESS_IMAGE_ACTIVITY = "reprocess_image"
REPORT_REPROCESS_ACTIVITY = "report_reprocess"

PRESETS_CHANGED_SIGNAL = "presets_changed"
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
CANCEL_SIGNAL = "cancel"
PROGRESS_QUERY = "progress"


def reprocess_queue_for(task_queue: str) -> str:
    """Reprocess runs, and so their images, go on a queue of their own: however many
    projects reprocess at once, they share each worker's few reprocess slots and never
    take the slots of live uploads."""
    return f"{task_queue}-reprocess"


def reprocess_workflow_id(project_id: int) -> str:
    return f"reprocess-project-{project_id}"


def reprocess_image_workflow_id(image_id: str) -> str:
    return f"reprocess-image-{image_id}"


class ReprocessState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class ImageOutcome(StrEnum):
    RENDERED = "rendered"  # something was missing or outdated, and is current now
    CURRENT = "current"  # nothing to do
    SKIPPED = "skipped"  # not `done` yet (still being processed): walked again later
    FAILED = "failed"  # retries spent; a later run tries again


@dataclass
class PageCursor:
    """The keyset position (created_at, id) after the last image of a page."""

    created_at: str
    image_id: str


@dataclass
class ReprocessProgress:
    """What the `progress` query answers, the API shows and the WebSocket pushes. Counts
    are of the current walk (`walk`: how many walks this run made, one per change)."""

    project_id: int
    state: str = ReprocessState.RUNNING.value
    presets_version: int = 0
    walk: int = 0
    images_seen: int = 0
    images_rendered: int = 0
    images_current: int = 0
    images_skipped: int = 0
    images_failed: int = 0


@dataclass
class ReprocessInput:
    project_id: int
    # The project's preset version this run must reach; a signal raises it.
    presets_version: int = 0
    concurrency: int = 2
    page_size: int = 50
    # Carried across continue-as-new: where the walk is, what it counted, and its controls.
    cursor: PageCursor | None = None
    walk_version: int = -1
    progress: ReprocessProgress | None = None
    paused: bool = False
    # Images still being processed (with the presets of their upload) when the walk
    # reached them: looked at again after a pause (`rechecking`), a bounded number of times.
    busy_ids: list[str] = field(default_factory=list)
    rechecking: bool = False
    busy_rechecks: int = 0
    recheck_delay_seconds: float = 15.0


@dataclass
class ReprocessPageInput:
    project_id: int
    after: PageCursor | None
    limit: int


@dataclass
class ReprocessPage:
    image_ids: list[str] = field(default_factory=list)
    # None: the walk is over.
    next: PageCursor | None = None


@dataclass
class ReprocessImageInput:
    image_id: str
    project_id: int
    fence: Fence = field(default_factory=Fence)


@dataclass
class ReprocessImageResult:
    image_id: str
    outcome: str
    # `<name>.<format>` of what was rendered, and of the versions deleted (no longer in
    # the project's presets).
    rendered: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass
class ReprocessImageRequest:
    """`POST /images/{id}/reprocess`: the same work for one image."""

    image_id: str
    project_id: int

"""What happened to each file and image, and the exit code that sums it up.

Exit codes: 0 all accepted (and, with --wait, all done); 1 some file was refused, or some
image ended in error or was not finished in time; 2 usage or connection error, bad key.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgproc_cli.errors import ApiError

FINAL_STATES = frozenset({"done", "error"})


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 130  # the shell's convention for Ctrl-C


@dataclass(frozen=True)
class Refusal:
    """Why a file has no image: the API's answer, or no answer at all (`status` None)."""

    code: str
    message: str
    status: int | None = None

    @classmethod
    def from_api_error(cls, error: ApiError) -> Refusal:
        return cls(error.code, error.message, error.status)


@dataclass(frozen=True)
class UploadOutcome:
    """One file: the image the API accepted, or why it was refused."""

    path: Path
    image_id: str | None = None
    error: Refusal | None = None


@dataclass
class ImageProgress:
    """One image as the WebSocket or polling last showed it."""

    state: str = "uploaded"
    error_code: str | None = None
    versions_done: set[str] = field(default_factory=set)
    versions_total: int | None = None  # known once the image has been seen whole

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def exit_code(
    uploads: Iterable[UploadOutcome], images: Mapping[str, ImageProgress] | None = None
) -> ExitCode:
    """1 if a file was refused or, when waited for (`images`), an image is not `done`."""
    if any(outcome.error is not None for outcome in uploads):
        return ExitCode.FAILED
    if images is not None and any(image.state != "done" for image in images.values()):
        return ExitCode.FAILED
    return ExitCode.OK

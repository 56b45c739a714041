"""Progress bars on stderr: bytes while uploading, then versions while processing.

They draw only on a terminal; piped or in CI, the lines printed by `render` are the output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from imgproc_cli.outcome import ImageProgress

# Until an image has been seen whole, assume the service's four sizes.
ASSUMED_VERSIONS = 4


class _Bars:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()


class UploadBars(_Bars):
    """One bar for all the bytes, and one per file being sent."""

    def __init__(self, console: Console, files: list[Path]) -> None:
        super().__init__(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=not console.is_terminal,
            )
        )
        self._total = self.progress.add_task("uploading", total=sum(map(_size, files)))

    def reporter(self, path: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
        """A callback for the file's read position, and one to call when it is finished."""
        task = self.progress.add_task(f"  {path.name}", total=_size(path))
        sent = 0

        def report(position: int) -> None:
            nonlocal sent
            # A rewind (httpx resending the body on a retry) moves the total back too.
            self.progress.advance(self._total, position - sent)
            self.progress.update(task, completed=position)
            sent = position

        def finish() -> None:
            self.progress.remove_task(task)

        return report, finish


class ProcessingBars(_Bars):
    """Derivatives made across all the images; a failed image counts as finished."""

    def __init__(self, console: Console, images: int) -> None:
        super().__init__(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                disable=not console.is_terminal,
            )
        )
        self._task = self.progress.add_task("processing", total=images * ASSUMED_VERSIONS)

    def update(self, images: Mapping[str, ImageProgress]) -> None:
        total = done = finished = failed = 0
        for image in images.values():
            versions = image.versions_total or ASSUMED_VERSIONS
            total += versions
            done += versions if image.final else len(image.versions_done)
            finished += image.final
            failed += image.state == "error"
        description = f"processing: {finished}/{len(images)} images finished"
        if failed:
            description += f", [red]{failed} failed[/]"
        self.progress.update(self._task, total=total, completed=done, description=description)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the upload itself reports the file as unreadable

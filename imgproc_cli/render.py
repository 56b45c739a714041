"""Everything the client prints: results on stdout (one image per line, scriptable),
refusals and notes on stderr.

Links are printed unwrapped and without markup: a presigned URL must stay copyable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from imgproc_cli.outcome import ImageProgress, UploadOutcome

UUID_WIDTH = 36
UNBOUNDED_WIDTH = 10_000


def plain(console: Console, *parts: object) -> None:
    """One line, exactly as given: no wrapping, highlighting or markup."""
    console.print(*parts, soft_wrap=True, markup=False, highlight=False)


def refusals(console: Console, uploads: Sequence[UploadOutcome]) -> None:
    for outcome in uploads:
        if outcome.error is not None:
            status = outcome.error.status or "no answer"
            plain(
                console,
                f"refused {outcome.path}: {status} {outcome.error.code}: {outcome.error.message}",
            )


def accepted(console: Console, uploads: Sequence[UploadOutcome]) -> None:
    """`<image id> <path>` per accepted file, ids first so `cut -d' ' -f1` gets them."""
    for outcome in uploads:
        if outcome.image_id is not None:
            plain(console, outcome.image_id, str(outcome.path))


def results(
    console: Console,
    uploads: Sequence[UploadOutcome],
    images: Mapping[str, ImageProgress],
    details: Mapping[str, Mapping[str, Any]],
) -> None:
    """Each accepted image's final state, then one indented line per link when done."""
    for outcome in uploads:
        if outcome.image_id is None:
            continue
        image = images[outcome.image_id]
        detail = details.get(outcome.image_id, {})
        plain(console, outcome.image_id, str(outcome.path), _state_text(image, detail))
        if image.state == "done":
            for name, width, height, url in links(detail):
                plain(console, f"  {name}", f"{width}x{height}" if width else "-", url)


def links(image: Mapping[str, Any]) -> list[tuple[str, int | None, int | None, str]]:
    """(version, width, height, url) for the original and every ready version."""
    sizes = dict(image.get("version_details") or {})
    sizes.setdefault("original", {"width": image.get("width"), "height": image.get("height")})
    return [
        (name, sizes.get(name, {}).get("width"), sizes.get(name, {}).get("height"), url)
        for name, url in (image.get("versions") or {}).items()
        if url
    ]


def _state_text(image: ImageProgress, detail: Mapping[str, Any]) -> str:
    if image.state == "error":
        error = detail.get("error") or {}
        code = error.get("code") or image.error_code or "unknown"
        return f"error {code}: {error.get('message') or ''}".rstrip(": ")
    if not image.final:
        return f"{image.state} (not finished when the wait ended)"
    return image.state


def status_table(
    console: Console,
    project_id: int,
    images: Sequence[Mapping[str, Any]],
    error_codes: Mapping[str, str],
) -> None:
    """The project's images, oldest first: id, state, error code and the versions present."""
    table = Table(title=f"project {project_id}: {len(images)} images", title_justify="left")
    table.add_column("image", no_wrap=True, min_width=UUID_WIDTH)
    table.add_column("state", no_wrap=True)
    table.add_column("error", overflow="fold")
    table.add_column("versions", overflow="fold")
    for image in images:
        image_id = str(image["image_id"])
        present = [name for name, link in (image.get("versions") or {}).items() if link]
        table.add_row(
            image_id,
            _styled_state(str(image["state"])),
            escape(error_codes.get(image_id, "")),
            escape(" ".join(present)),
        )
    if not console.is_terminal:
        # Piped, each image stays on one line for scripts, however wide that makes it.
        console = Console(
            file=console.file, width=_natural_width(console, table), color_system=None
        )
    console.print(table)


def _natural_width(console: Console, table: Table) -> int:
    """The table's width with no cell wrapped."""
    unbounded = console.options.update_width(UNBOUNDED_WIDTH)
    return Measurement.get(console, unbounded, table).maximum


def _styled_state(state: str) -> str:
    colour = {"done": "green", "error": "red"}.get(state)
    return f"[{colour}]{state}[/]" if colour else escape(state)

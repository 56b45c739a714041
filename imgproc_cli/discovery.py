"""Which files an upload sends: named files as given, and image files found in folders."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgproc_cli.errors import CliError

# Only for picking files out of folders: the server decides from the bytes what it accepts,
# so a file named on the command line is sent whatever its extension.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".avif"})


def find_images(paths: Iterable[Path]) -> list[Path]:
    """Files to upload, in a stable order, each once; a missing path is a usage error."""
    found: dict[Path, None] = {}  # a dict keeps the first-seen order and drops repeats
    for path in paths:
        if path.is_dir():
            found.update(dict.fromkeys(_images_under(path)))
        elif path.is_file():
            found[path] = None
        else:
            raise CliError(f"{path}: no such file or folder")
    return list(found)


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _images_under(folder: Path) -> Iterator[Path]:
    # os.walk does not follow symlinked folders, so a link loop cannot recurse forever.
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            path = Path(root, name)
            if not name.startswith(".") and is_image_name(path) and path.is_file():
                yield path

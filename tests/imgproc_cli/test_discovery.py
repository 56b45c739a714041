from __future__ import annotations

from pathlib import Path

import pytest

from imgproc_cli.discovery import find_images
from imgproc_cli.errors import CliError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_searched_recursively_by_extension(tmp_path: Path) -> None:
    wanted = [
        touch(tmp_path / "a.JPG"),
        touch(tmp_path / "b.png"),
        touch(tmp_path / "sub" / "c.webp"),
        touch(tmp_path / "sub" / "deeper" / "d.avif"),
        touch(tmp_path / "sub" / "e.gif"),
    ]
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "sub" / "raw.tiff")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".cache" / "f.jpg")
    assert sorted(find_images([tmp_path])) == sorted(wanted)


def test_named_files_are_sent_whatever_their_extension(tmp_path: Path) -> None:
    # The server decides from the bytes; the extension only picks files out of folders.
    odd = touch(tmp_path / "photo.bin")
    assert find_images([odd]) == [odd]


def test_order_is_kept_and_repeats_dropped(tmp_path: Path) -> None:
    first, second = touch(tmp_path / "z" / "1.jpg"), touch(tmp_path / "a.jpg")
    assert find_images([tmp_path / "z", second, first, tmp_path / "z"]) == [first, second]


def test_an_empty_folder_gives_nothing(tmp_path: Path) -> None:
    assert find_images([tmp_path]) == []


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no such file or folder"):
        find_images([tmp_path / "nope.jpg"])

"""Installing the project puts no generic top-level package (api, core, cli...) into
site-packages, where it would collide with other projects': only `imgproc_cli`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.files import REPO_ROOT


def test_the_wheel_holds_only_the_cli_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("imgproc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/", 1)[0] for name in archive.namelist()}
    packages = {name for name in top_level if not name.endswith(".dist-info")}
    assert packages == {"imgproc_cli"}
    entry_points = next(name for name in archive.namelist() if name.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "imgproc = imgproc_cli.main:main" in archive.read(entry_points).decode()

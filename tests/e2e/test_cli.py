"""`imgproc` as a user runs it: the installed console script against the real product.

Uploads go to one API process and `status` asks the other, so the answers come from
Postgres and the events from LISTEN/NOTIFY, not from one process's memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import Engine

from bench.rows import insert_done_images
from tests.e2e.conftest import Product
from tests.factories import jpeg_bytes, png_with_alpha_bytes

IMGPROC = Path(sys.executable).with_name("imgproc")
RUN_SECONDS = 180


def imgproc(base_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMGPROC_URL": base_url}
    env.pop("IMGPROC_API_KEY", None)
    return subprocess.run(
        [str(IMGPROC), *argv], capture_output=True, text=True, env=env, timeout=RUN_SECONDS
    )


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_upload_files_and_a_folder_then_status(product: Product, tmp_path: Path) -> None:
    project = str(product.new_project_id())
    files = [
        write(tmp_path / "one.jpg", jpeg_bytes(640, 480)),
        write(tmp_path / "two.png", png_with_alpha_bytes(300, 200)),
    ]
    folder = tmp_path / "album"
    in_folder = [
        write(folder / "three.jpg", jpeg_bytes(800, 600)),
        write(folder / "nested" / "four.jpeg", jpeg_bytes(200, 300)),
    ]
    write(folder / "notes.txt", b"not an image, and not sent")

    upload = imgproc(
        product.base_urls[0], "upload", *map(str, files), str(folder), "-p", project, "--wait"
    )

    assert upload.returncode == 0, upload.stderr
    assert "polling instead" not in upload.stderr, "the progress followed the WebSocket"
    states = {
        line.split()[1]: line.split()
        for line in upload.stdout.splitlines()
        if not line.startswith(" ")
    }
    assert set(states) == {str(path) for path in [*files, *in_folder]}
    assert all(fields[2] == "done" for fields in states.values())
    links = [line.split() for line in upload.stdout.splitlines() if line.startswith("  ")]
    assert sorted(name for name, *_ in links) == sorted(
        ["original", "thumb", "big_thumb", "big_1920", "d2500"] * 4
    )
    thumb_url = next(url for name, _, url in links if name == "thumb")
    assert httpx.get(thumb_url, follow_redirects=True).status_code == 200

    status = imgproc(product.base_urls[1], "status", project)

    assert status.returncode == 0, status.stderr
    ids = {fields[0] for fields in states.values()}
    rows = [line for line in status.stdout.splitlines() if any(i in line for i in ids)]
    assert len(rows) == 4, status.stdout
    assert all("done" in row and "d2500" in row for row in rows)
    assert "project " + project + ": 4 images" in status.stdout


def test_refused_and_failed_images_exit_1(product: Product, tmp_path: Path) -> None:
    project = str(product.new_project_id())
    good = write(tmp_path / "good.jpg", jpeg_bytes(400, 300))
    # A JPEG signature then garbage: refused at ingress with 422 invalid_image.
    garbage = write(tmp_path / "garbage.jpg", b"\xff\xd8\xff" + b"\x00" * 4000)
    # A truncated JPEG passes the header checks; the worker's full decode fails it.
    whole = jpeg_bytes(1200, 900)
    truncated = write(tmp_path / "truncated.jpg", whole[: len(whole) * 2 // 3])

    run = imgproc(
        product.base_url, "upload", str(good), str(garbage), str(truncated), "-p", project, "--wait"
    )

    assert run.returncode == 1, run.stdout + run.stderr
    assert f"refused {garbage}: 422 invalid_image" in run.stderr
    assert "Traceback" not in run.stderr
    lines = {line.split()[1]: line for line in run.stdout.splitlines() if not line.startswith(" ")}
    assert set(lines) == {str(good), str(truncated)}
    assert lines[str(good)].endswith(" done")
    assert " error invalid_image" in lines[str(truncated)]


def test_no_api_is_a_clear_exit_2(tmp_path: Path) -> None:
    photo = write(tmp_path / "a.jpg", jpeg_bytes(50, 50))
    run = imgproc("http://127.0.0.1:1", "upload", str(photo), "-p", "1")
    assert run.returncode == 2
    assert "cannot connect to the API at http://127.0.0.1:1" in run.stderr
    assert "Traceback" not in run.stderr


def test_upload_wait_and_status_on_a_project_of_10_000_images(
    product: Product, engine: Engine, tmp_path: Path
) -> None:
    project_id = product.new_project_id()
    with engine.begin() as connection:
        insert_done_images(connection, project_id, 10_000)
    photo = write(tmp_path / "new.jpg", jpeg_bytes(640, 480))

    upload = imgproc(product.base_url, "upload", str(photo), "-p", str(project_id), "--wait")
    status = imgproc(product.base_urls[1], "status", str(project_id))

    assert upload.returncode == 0, upload.stderr
    assert "1009" not in upload.stderr and "polling instead" not in upload.stderr
    assert status.returncode == 0, status.stderr
    assert f"project {project_id}: 10001 images" in status.stdout

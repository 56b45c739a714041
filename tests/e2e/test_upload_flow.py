"""The whole product through real processes: uvicorn, worker.py, Temporal, S3 and Postgres.

A client uploads over HTTP, worker processes do the work, and the client reads the
result back over HTTP and downloads every link, exactly as a user would.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx

from core.presets import PRESETS, fit_within
from tests.e2e.conftest import Product
from tests.e2e.helpers import download, upload, wait_until_final
from tests.factories import jpeg_bytes, png_with_alpha_bytes

SPEC_VERSIONS = {"original", "thumb", "big_thumb", "big_1920", "d2500"}


async def assert_versions(image: dict[str, Any], upright: tuple[int, int], fmt: str) -> None:
    assert image["state"] == "done", image
    assert (image["width"], image["height"]) == upright
    for preset in PRESETS:
        derivative, headers = await download(image["versions"][preset.name])
        assert derivative.size == fit_within(*upright, preset.box), preset.name
        assert derivative.format == fmt
        assert headers["content-type"] == f"image/{fmt.lower()}"
        assert "max-age" in headers["cache-control"]
        assert not derivative.getexif(), "derivatives carry no EXIF"
        assert "comment" not in derivative.info
        detail = image["version_details"][preset.name]
        assert (detail["width"], detail["height"]) == derivative.size


async def test_three_kinds_of_upload_reach_done(product: Product) -> None:
    project_id = product.new_project_id()
    cases = {
        "landscape.jpg": (jpeg_bytes(4000, 3000, comment=b"private"), (4000, 3000), "JPEG"),
        "alpha.png": (png_with_alpha_bytes(1200, 900), (1200, 900), "PNG"),
        "portrait.jpg": (jpeg_bytes(1600, 1200, orientation=6), (1200, 1600), "JPEG"),
    }
    async with product.client() as client:
        ids = {
            name: await upload(client, project_id, name, data)
            for name, (data, _, _) in cases.items()
        }
        finals = {name: await wait_until_final(client, i) for name, i in ids.items()}
        for name, (_, upright, fmt) in cases.items():
            await assert_versions(finals[name], upright, fmt)
        await assert_project_shapes(client, project_id, set(ids.values()))
    assert_workflows_completed(product, project_id, set(ids.values()))


async def assert_project_shapes(
    client: httpx.AsyncClient, project_id: int, image_ids: set[str]
) -> None:
    project = (await client.get(f"/projects/{project_id}")).json()
    assert project["counts"]["done"] == len(image_ids)
    assert {i["image_id"] for i in project["images"]} == image_ids
    spec = (await client.get(f"/projects/{project_id}/images")).json()
    for image in spec["images"]:
        # The spec's shape, which only gains fields.
        assert set(image) == {
            "image_id",
            "state",
            "project_id",
            "versions",
            "facts",
            "duplicate_of",
        }
        assert set(image["versions"]) == SPEC_VERSIONS
        assert all(image["versions"].values())


def list_workflow_statuses(product: Product, query: str) -> dict[str, str]:
    listed = subprocess.run(
        [
            str(product.temporal_cli),
            "workflow",
            "list",
            "--address",
            product.temporal_address,
            "--query",
            query,
            "--output",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    executions = json.loads(listed.stdout or "[]")
    return {e["execution"]["workflowId"]: e["status"] for e in executions}


def assert_workflows_completed(product: Product, project_id: int, image_ids: set[str]) -> None:
    """Operators find the workflows by ProjectId in the CLI, as in the Web UI."""
    expected = {f"image-{i}": "WORKFLOW_EXECUTION_STATUS_COMPLETED" for i in image_ids}
    deadline = time.monotonic() + 10  # visibility is eventually consistent
    while (statuses := list_workflow_statuses(product, f'ProjectId="{project_id}"')) != expected:
        if time.monotonic() > deadline:
            assert statuses == expected
        time.sleep(0.2)


async def test_corruption_found_by_the_worker_ends_in_error(product: Product) -> None:
    project_id = product.new_project_id()
    data = jpeg_bytes(2000, 1500)
    async with product.client() as client:
        image_id = await upload(client, project_id, "broken.jpg", data[: len(data) // 3])
        image = await wait_until_final(client, image_id)
    assert image["state"] == "error"
    assert image["error"]["code"] == "invalid_image"
    assert [v for k, v in image["versions"].items() if k != "original"] == [None] * 4

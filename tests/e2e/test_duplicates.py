"""Near duplicates through the real stack: the same photo resized, recompressed and
slightly cropped is found by perceptual hash; a different photo, or the same photo in
another project, is not."""

from __future__ import annotations

import uuid

import httpx
from PIL import Image

from core.storage import Storage
from tests.e2e.conftest import Product
from tests.e2e.helpers import upload, upload_keys, wait_until_final
from tests.factories import encoded, photo


def variants() -> dict[str, bytes]:
    base = photo(1600, 1200, seed=3)
    w, h = base.size
    different = Image.effect_mandelbrot((1600, 1200), (-2.0, -1.2, 0.8, 1.2), 64)
    return {
        "original": encoded(base, "JPEG", quality=90),
        "resized": encoded(base.resize((800, 600), Image.Resampling.LANCZOS), "JPEG"),
        "recompressed": encoded(base, "JPEG", quality=35),
        "cropped": encoded(base.crop((w // 40, h // 40, w - w // 40, h - h // 40)), "JPEG"),
        "different": encoded(different.convert("RGB"), "JPEG", quality=90),
    }


async def test_similar_images_are_found_by_perceptual_hash(product: Product) -> None:
    project_id, other_project = product.new_project_id(), product.new_project_id()
    files = variants()
    async with product.client() as client:
        ids = {
            name: await upload(client, project_id, f"{name}.jpg", d) for name, d in files.items()
        }
        elsewhere = await upload(client, other_project, "same.jpg", files["original"])
        for image_id in [*ids.values(), elsewhere]:
            assert (await wait_until_final(client, image_id))["state"] == "done"
        url = f"/projects/{project_id}/images"
        response = await client.get(url, params={"similar_to": ids["original"], "max_distance": 10})
        assert response.status_code == 200, response.text
        found = {image["image_id"] for image in response.json()["images"]}
        assert found == {ids["resized"], ids["recompressed"], ids["cropped"]}
        assert response.json()["total"] == 3

        # Another project's image is never a reference, nor ever listed.
        foreign = await client.get(url, params={"similar_to": elsewhere})
        assert foreign.status_code == 404
        missing = await client.get(url, params={"similar_to": str(uuid.uuid4())})
        assert missing.status_code == 404
        too_far = await client.get(url, params={"similar_to": ids["original"], "max_distance": 65})
        assert too_far.status_code == 422


async def post_upload(
    client: httpx.AsyncClient, project_id: int, data: bytes, dedupe: bool | None = None
) -> httpx.Response:
    fields = {"project_id": str(project_id)}
    if dedupe is not None:
        fields["dedupe"] = "true" if dedupe else "false"
    return await client.post("/upload_image", data=fields, files={"file": ("a.jpg", data)})


async def test_exact_duplicates_are_answered_with_the_done_image(
    product: Product, storage: Storage
) -> None:
    project_id, other_project = product.new_project_id(), product.new_project_id()
    data = variants()["original"]
    async with product.client() as client:
        first = (await post_upload(client, project_id, data, dedupe=True)).json()["image_id"]
        assert (await wait_until_final(client, first))["state"] == "done"
        before = upload_keys(storage)

        again = await post_upload(client, project_id, data, dedupe=True)
        assert again.status_code == 200, again.text
        assert again.json()["image_id"] == again.json()["duplicate_of"] == first
        assert upload_keys(storage) == before  # the duplicate's bytes were not kept

        # Opt-in: without the field the same bytes are a new image; never across projects.
        plain = await post_upload(client, project_id, data)
        assert plain.status_code == 202 and plain.json()["image_id"] != first
        foreign = await post_upload(client, other_project, data, dedupe=True)
        assert foreign.status_code == 202 and foreign.json()["duplicate_of"] is None

        # Per project: the setting turns it on for every upload of the project.
        settings_url = f"/projects/{project_id}/settings"
        assert (await client.get(settings_url)).json() == {"dedupe": False}
        assert (await client.put(settings_url, json={"dedupe": True})).json() == {"dedupe": True}
        by_setting = await post_upload(client, project_id, data)
        assert by_setting.status_code == 200 and by_setting.json()["duplicate_of"] == first
        opted_out = await post_upload(client, project_id, data, dedupe=False)
        assert opted_out.status_code == 202  # a request's explicit choice wins

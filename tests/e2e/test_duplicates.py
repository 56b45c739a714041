"""Near duplicates through the real stack: the same photo resized, recompressed and
slightly cropped is found by perceptual hash; a different photo, or the same photo in
another project, is not."""

from __future__ import annotations

import uuid

from PIL import Image

from tests.e2e.conftest import Product
from tests.e2e.helpers import upload, wait_until_final
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

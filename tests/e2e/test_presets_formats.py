"""Presets and formats through the real stack: a project's own set at upload, every format
listed, and the negotiated redirect."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Product
from tests.e2e.helpers import download, upload, wait_until_final
from tests.factories import jpeg_bytes, png_with_alpha_bytes

SPEC_NAMES = {"original", "thumb", "big_thumb", "big_1920", "d2500"}
WITH_WEBP = [
    {"name": "thumb", "width": 150, "height": 120, "formats": ["auto", "webp"]},
    {"name": "big_thumb", "width": 700, "height": 700, "formats": ["auto", "webp"]},
    {"name": "big_1920", "width": 1920, "height": 1080, "formats": ["auto", "webp"]},
    {"name": "d2500", "width": 2500, "height": 2500, "formats": ["auto", "webp"]},
]


async def negotiated(client: httpx.AsyncClient, path: str, accept: str | None) -> str | None:
    headers = {"Accept": accept} if accept else {}
    response = await client.get(path, headers=headers)
    assert response.status_code == 302, response.text
    assert response.headers["Vary"] == "Accept"
    served, _ = await download(response.headers["Location"])
    return served.format


async def test_the_default_set_makes_the_spec_versions_only(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        image = await wait_until_final(
            client, await upload(client, project_id, "a.jpg", jpeg_bytes(800, 600))
        )
        assert image["state"] == "done", image
        assert set(image["versions"]) == SPEC_NAMES  # the spec's shape, unchanged
        assert image["version_details"]["thumb"]["content_type"] == "image/jpeg"
        assert {name: set(f) for name, f in image["formats"].items()} == {
            name: {"auto"} for name in SPEC_NAMES - {"original"}
        }
        path = f"/images/{image['image_id']}/versions/thumb"
        # Nothing better is stored, so a browser that takes WebP gets the JPEG.
        assert await negotiated(client, path, "image/avif,image/webp,*/*") == "JPEG"


async def test_webp_opted_in_is_listed_and_negotiated(product: Product) -> None:
    project_id = product.new_project_id()
    async with product.client() as client:
        stored = await client.put(f"/projects/{project_id}/presets", json={"presets": WITH_WEBP})
        assert stored.status_code == 200, stored.text
        image = await wait_until_final(
            client, await upload(client, project_id, "a.jpg", jpeg_bytes(800, 600))
        )
        assert image["state"] == "done", image
        assert set(image["versions"]) == SPEC_NAMES
        thumb = image["formats"]["thumb"]
        assert set(thumb) == {"auto", "webp"}
        assert thumb["webp"]["content_type"] == "image/webp"
        assert thumb["webp"]["bytes"] > 0 and thumb["webp"]["width"] == 150
        path = f"/images/{image['image_id']}/versions/thumb"
        for accept, expected in (("image/webp,*/*", "WEBP"), ("*/*", "JPEG"), (None, "JPEG")):
            assert await negotiated(client, path, accept) == expected, accept
        missing = await client.get(f"/images/{image['image_id']}/versions/nope")
        assert missing.status_code == 404
        bad_name = await client.get(f"/images/{image['image_id']}/versions/{'x' * 33}")
        assert bad_name.status_code == 422


async def test_a_projects_own_set_applies_to_its_next_upload(product: Product) -> None:
    project_id = product.new_project_id()
    square = {"name": "square_400", "width": 400, "height": 400, "fit": "cover"}
    square |= {"gravity": "attention", "formats": ["webp", "avif"]}
    async with product.client() as client:
        stored = await client.put(
            f"/projects/{project_id}/presets", json={"presets": [*WITH_WEBP, square]}
        )
        assert stored.status_code == 200, stored.text
        image = await wait_until_final(
            client, await upload(client, project_id, "p.png", png_with_alpha_bytes(900, 600))
        )
        assert image["state"] == "done", image
        formats = image["formats"]["square_400"]
        assert set(formats) == {"webp", "avif"}
        assert (formats["avif"]["width"], formats["avif"]["height"]) == (400, 400)
        assert image["formats"]["thumb"]["auto"]["content_type"] == "image/png"  # alpha kept
        webp, _ = await download(formats["webp"]["url"])
        assert webp.mode == "RGBA"
        # A preset without `auto` is still listed, by its first format.
        assert image["versions"]["square_400"] is not None
        listing = (await client.get(f"/projects/{project_id}/images")).json()
        assert set(listing["images"][0]["versions"]) == SPEC_NAMES | {"square_400"}
        response = await client.get(
            f"/images/{image['image_id']}/versions/square_400", headers={"Accept": "image/avif"}
        )
        served, _ = await download(response.headers["Location"])
        assert (served.format, served.size) == ("AVIF", (400, 400))

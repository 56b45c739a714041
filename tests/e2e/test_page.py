"""The web page in headless Chromium: pick a project, upload, watch the thumbnail appear."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright
from sqlalchemy import Engine

from bench.rows import insert_done_images
from tests.e2e.conftest import Product
from tests.factories import jpeg_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; `make test` installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page()
    yield page
    page.close()


@pytest.mark.parametrize("flow", ["direct", "link"])
def test_upload_through_the_page_shows_the_thumbnail(
    page: Page, product: Product, tmp_path: Path, flow: str
) -> None:
    photo = tmp_path / "page-photo.jpg"
    photo.write_bytes(jpeg_bytes(1600, 1200))
    page.goto(product.base_url)
    page.fill("#project", str(product.new_project_id()))
    page.dispatch_event("#project", "change")
    page.select_option("#flow", flow)
    page.set_input_files("#files", str(photo))
    page.click("#upload")

    done = page.locator('.card[data-state="done"]')
    done.wait_for(timeout=60_000)
    thumbnail = done.locator("img.thumbnail")
    thumbnail.wait_for(timeout=10_000)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 150", arg=thumbnail.element_handle()
    )
    links = done.locator("li")
    assert links.count() == 5
    assert "big_1920 1440\u00d71080" in done.inner_text()


def test_a_refused_file_shows_its_error(page: Page, product: Product, tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    page.goto(product.base_url)
    page.set_input_files("#files", str(notes))
    page.click("#upload")
    banner = page.locator("#banner.error")
    banner.wait_for(timeout=10_000)
    assert "unsupported_format" in banner.inner_text()


def test_a_project_of_10_000_images_shows_its_counts_and_pages_older_ones(
    page: Page, product: Product, engine: Engine, tmp_path: Path
) -> None:
    project_id = product.new_project_id()
    with engine.begin() as connection:
        insert_done_images(connection, project_id, 10_000)
    page.goto(product.base_url)
    page.fill("#project", str(project_id))
    page.dispatch_event("#project", "change")
    page.wait_for_function(
        "() => document.getElementById('counts').textContent.includes('done: 10000')"
    )
    assert page.locator(".card").count() == 100
    page.click("#older")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 200")

    photo = tmp_path / "new.jpg"
    photo.write_bytes(jpeg_bytes(640, 480))
    page.set_input_files("#files", str(photo))
    page.click("#upload")
    page.locator('.card[data-state="done"] img.thumbnail').first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => document.getElementById('counts').textContent.includes('done: 10001')"
    )


def test_the_placeholder_is_painted_until_the_thumbnail_arrives(
    page: Page, product: Product
) -> None:
    project_id = product.new_project_id()
    with httpx.Client(base_url=product.base_url, timeout=30) as client:
        response = client.post(
            "/upload_image",
            data={"project_id": str(project_id)},
            files={"file": ("p.jpg", jpeg_bytes(1600, 1200))},
        )
        assert response.status_code == 202, response.text
        image_id = response.json()["image_id"]
        deadline = time.monotonic() + 60
        while (image := client.get(f"/images/{image_id}").json())["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)  # the thumbnail is held back until released

    page.route("**/links/**", hold)  # the page's only links are its thumbnails
    page.goto(product.base_url)
    page.fill("#project", str(project_id))
    page.dispatch_event("#project", "change")

    placeholder = page.locator(".card canvas.placeholder")
    placeholder.wait_for(timeout=10_000)
    assert placeholder.get_attribute("data-blurhash") == image["facts"]["blurhash"]
    painted = placeholder.evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
    )
    assert painted[3::4] == [255] * (len(painted) // 4), "every pixel is painted"
    assert len(set(painted)) > 4, "a blur of colours, not one flat fill"
    for _ in range(100):  # route handlers run while Playwright is waiting
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page asked for the thumbnail"
    assert placeholder.count() == 1, "still painted while the thumbnail is on its way"
    for route in held:
        route.continue_()
    page.locator(".card img.thumbnail.loaded").wait_for(timeout=10_000)
    assert placeholder.count() == 0, "the placeholder goes once the thumbnail has loaded"

"""The web page in headless Chromium: pick a project, upload, watch the thumbnail appear."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
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

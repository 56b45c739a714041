"""GET /metrics: requests by route template, uploads by outcome, images by state."""

from __future__ import annotations

import uuid

import httpx

from core.contracts import ImageState
from tests.factories import jpeg_bytes
from tests.metrics_text import sample_value


async def scrape(api: httpx.AsyncClient) -> str:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template(api: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await api.get(f"/images/{uuid.uuid4()}")).status_code == 404
    assert (await api.get("/no/such/path")).status_code == 404
    text = await scrape(api)
    labels = {"method": "GET", "route": "/images/{image_id}", "status": "404"}
    assert sample_value(text, "imgproc_http_requests_total", **labels) == 2
    assert sample_value(text, "imgproc_http_request_duration_seconds_count", **labels) == 2
    unmatched = {"route": "<unmatched>", "status": "404"}
    assert sample_value(text, "imgproc_http_requests_total", **unmatched) == 1
    assert "/no/such/path" not in text


async def test_made_up_methods_share_one_label(api: httpx.AsyncClient) -> None:
    # Any token is a method to the HTTP parser: each one a series would be unbounded.
    for n in range(3):
        await api.request(f"MADEUP{n}", "/healthz")
        await api.request(f"MADEUP{n}", "/no/such/path")
    text = await scrape(api)
    assert "MADEUP" not in text
    other = {"method": "OTHER", "route": "/healthz", "status": "405"}
    assert sample_value(text, "imgproc_http_requests_total", **other) == 3
    unmatched = {"method": "OTHER", "route": "<unmatched>", "status": "404"}
    assert sample_value(text, "imgproc_http_requests_total", **unmatched) == 3


async def test_uploads_are_counted_as_accepted_or_rejected_by_code(
    api: httpx.AsyncClient,
) -> None:
    form = {"project_id": "1"}
    refused = await api.post("/upload_image", data=form, files={"file": ("a.txt", b"hello")})
    assert refused.json()["error"]["code"] == "unsupported_format"
    missing = await api.post("/upload_image", files={"file": ("a.jpg", jpeg_bytes(20, 20))})
    assert missing.json()["error"]["code"] == "validation_error"
    accepted = await api.post(
        "/upload_image", data=form, files={"file": ("a.jpg", jpeg_bytes(20, 20))}
    )
    assert accepted.status_code == 202, accepted.text

    text = await scrape(api)
    rejected = "imgproc_uploads_rejected_total"
    assert sample_value(text, rejected, flow="direct", code="unsupported_format") == 1
    assert sample_value(text, rejected, flow="direct", code="validation_error") == 1
    assert sample_value(text, "imgproc_uploads_accepted_total", flow="direct") == 1


async def test_images_by_state_come_from_postgres(api: httpx.AsyncClient) -> None:
    text = await scrape(api)
    for state in ImageState:
        value = sample_value(text, "imgproc_images", state=state.value)
        assert value is not None and value >= 0, state

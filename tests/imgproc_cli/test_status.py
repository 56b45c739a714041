from __future__ import annotations

import httpx

from imgproc_cli.main import main
from tests.imgproc_cli.fakes import error, image, recorded_consoles

IDS = ["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"]


def summary(image_id: str, state: str) -> dict[str, object]:
    full = image(image_id, state)
    return {key: full[key] for key in ("image_id", "state", "project_id", "versions")}


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/projects/7/images":
        images = [summary(IDS[0], "done"), summary(IDS[1], "error")]
        return httpx.Response(200, json={"images": images, "limit": 1000, "offset": 0, "total": 2})
    if request.url.path == f"/images/{IDS[1]}":
        return httpx.Response(200, json=image(IDS[1], "error", "invalid_image"))
    return error(404, "not_found")


def test_status_prints_a_table_with_error_codes_and_versions() -> None:
    recorded = recorded_consoles()
    code = main(
        ["status", "7"],
        environ={},
        consoles=recorded.consoles,
        transport=httpx.MockTransport(answer),
    )
    assert code == 0
    rows = {line.split()[1]: line for line in recorded.out.splitlines() if "-" in line[:40]}
    assert "project 7: 2 images" in recorded.out
    assert "done" in rows[IDS[0]]
    assert "original thumb big_thumb big_1920 d2500" in rows[IDS[0]]
    assert "error" in rows[IDS[1]]
    assert "invalid_image" in rows[IDS[1]]


def test_status_of_a_hidden_project_says_so_and_exits_2() -> None:
    recorded = recorded_consoles()
    hidden = httpx.MockTransport(lambda request: error(404, "not_found", "no project 7"))
    code = main(["status", "7"], environ={}, consoles=recorded.consoles, transport=hidden)
    assert code == 2
    assert "the API answered 404 not_found: no project 7" in recorded.err

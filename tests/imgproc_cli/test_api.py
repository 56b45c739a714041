"""The small HTTP helpers: the WebSocket token, URLs, error bodies, pagination."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from imgproc_cli import api
from imgproc_cli.errors import ApiError, CliError
from tests.imgproc_cli.fakes import Handler, error


def client(handler: Handler, key: str | None = "k") -> httpx.AsyncClient:
    return api.make_client(api.Connection("http://test", key), httpx.MockTransport(handler))


async def test_no_key_needs_no_token() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    async with client(fail, key=None) as http:
        assert await api.websocket_token(http, 7) is None


@pytest.mark.parametrize("status", [404, 405])
async def test_an_api_without_auth_gives_no_token(status: int) -> None:
    async with client(lambda request: error(status, "not_found")) as http:
        assert await api.websocket_token(http, 7) is None


async def test_the_token_is_asked_for_the_project() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"token": "t0k", "expires_in": 60})

    async with client(answer) as http:
        assert await api.websocket_token(http, 7) == "t0k"
    assert (seen[0].method, seen[0].url.path) == ("POST", "/projects/7/ws-token")
    assert seen[0].headers["Authorization"] == "Bearer k"


async def test_a_bad_key_for_the_token_is_fatal() -> None:
    async with client(lambda request: error(401, "unauthorized")) as http:
        with pytest.raises(CliError, match="401"):
            await api.websocket_token(http, 7)


def test_websocket_urls() -> None:
    assert api.Connection("http://h:8000/").ws_url(7, None) == "ws://h:8000/ws/projects/7"
    secure = api.Connection("https://h").ws_url(7, "a+b/c")
    assert secure == "wss://h/ws/projects/7?token=a%2Bb%2Fc"


async def test_error_bodies_become_api_errors() -> None:
    answer = error(503, "dependency_unavailable", "S3 is down", **{"Retry-After": "5"})
    async with client(lambda request: answer) as http:
        with pytest.raises(ApiError) as raised:
            await api.get_image(http, "x")
    assert (raised.value.status, raised.value.code) == (503, "dependency_unavailable")
    assert (raised.value.message, raised.value.retry_after) == ("S3 is down", 5.0)


async def test_an_error_without_the_api_body_keeps_the_status() -> None:
    async with client(lambda request: httpx.Response(502, text="<html>")) as http:
        with pytest.raises(ApiError) as raised:
            await api.get_image(http, "x")
    assert (raised.value.status, raised.value.code) == (502, "http_502")


async def test_project_images_are_read_page_by_page() -> None:
    everything = [{"image_id": str(n), "state": "done", "versions": {}} for n in range(2500)]

    def page(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        images = everything[offset : offset + limit]
        return httpx.Response(200, json={"images": images, "total": len(everything)})

    async with client(page) as http:
        assert await api.list_project_images(http, 7) == everything


def test_the_progress_file_reports_positions_and_rewinds(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    positions: list[int] = []
    with api.ProgressFile(path, positions.append) as file:
        file.read(60)
        file.read(60)
        file.seek(0)
    assert positions == [60, 100, 0]

"""The HTTP calls the client makes, over one `httpx.AsyncClient`.

Every answer goes through `_checked`: fatal statuses (401, 403) and an unreachable API
become `CliError`, other error answers `ApiError`, which callers handle per file or image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from imgproc_cli.errors import ApiError, CliError

DEFAULT_URL = "http://127.0.0.1:8000"
# Reading waits for the original to be stored and its workflow started: allow for that.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
PAGE_SIZE = 1000  # the API's maximum `limit`
FATAL_STATUSES = {401: "the API refused the key (401): check --api-key or IMGPROC_API_KEY"}


@dataclass(frozen=True)
class Connection:
    """Where the API is, and the key to send (or None in local mode)."""

    url: str = DEFAULT_URL
    api_key: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def ws_url(self, project_id: int, token: str | None) -> str:
        base = self.url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        query = str(httpx.QueryParams({"token": token})) if token else ""
        return f"{base}/ws/projects/{project_id}" + (f"?{query}" if query else "")


def make_client(
    connection: Connection, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one client of a run; tests pass an `httpx.MockTransport`."""
    return httpx.AsyncClient(
        base_url=connection.url,
        headers=connection.headers(),
        timeout=TIMEOUT,
        transport=transport,
    )


class ProgressFile(io.FileIO):
    """A file that reports its read position, so the bytes bar follows what httpx streams.

    httpx reads the multipart file part in chunks, and seeks back to 0 when it sends the
    body again, so reporting the position (not adding up reads) stays right across retries.
    """

    def __init__(self, path: Path, report: Callable[[int], None]) -> None:
        super().__init__(path, "rb")
        self._report = report

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self._report(self.tell())
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        position = super().seek(offset, whence)
        self._report(position)
        return position


async def upload_image(
    client: httpx.AsyncClient,
    path: Path,
    project_id: int,
    idempotency_key: str,
    report: Callable[[int], None],
) -> dict[str, Any]:
    """`POST /upload_image`, the file streamed from disk; the API's 202 answer."""
    with ProgressFile(path, report) as file:
        response = await _send(
            client,
            "POST",
            "/upload_image",
            data={"project_id": str(project_id)},
            files={"file": (path.name, file)},
            headers={"Idempotency-Key": idempotency_key},
        )
    return _json(response)


async def get_image(client: httpx.AsyncClient, image_id: str) -> dict[str, Any]:
    return _json(await _send(client, "GET", f"/images/{image_id}"))


async def list_project_images(client: httpx.AsyncClient, project_id: int) -> list[dict[str, Any]]:
    """Every image of a project, oldest first, reading `GET /projects/{id}/images` page by page."""
    images: list[dict[str, Any]] = []
    while True:
        params = {"limit": PAGE_SIZE, "offset": len(images)}
        page = _json(await _send(client, "GET", f"/projects/{project_id}/images", params=params))
        images.extend(page["images"])
        if not page["images"] or len(images) >= page["total"]:
            return images


async def websocket_token(client: httpx.AsyncClient, project_id: int) -> str | None:
    """A short-lived token for the project's WebSocket, or None when none is needed.

    Without a key there is nothing to exchange. With one, an API without access control
    has no such route (404 or 405): connect without a token then.
    """
    if "Authorization" not in client.headers:
        return None
    try:
        response = await _send(client, "POST", f"/projects/{project_id}/ws-token")
    except ApiError as error:
        if error.status in (404, 405):
            return None
        raise
    token = _json(response).get("token")
    return str(token) if token else None


async def _send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.ConnectError as error:
        raise CliError(
            f"cannot connect to the API at {client.base_url} ({error}): is it running? "
            "Set --url or IMGPROC_URL"
        ) from error
    return _checked(response)


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code in FATAL_STATUSES:
        raise CliError(FATAL_STATUSES[response.status_code])
    if response.status_code == 403:
        error = ApiError.from_response(response)
        raise CliError(f"the API refused the request (403 {error.code}): {error.message}")
    if response.is_error:
        raise ApiError.from_response(response)
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ApiError(response.status_code, "unexpected_answer", "the API answered no object")
    return body


# For commands that only send a request and read its object (see cli/webhooks.py).
send = _send
json_object = _json

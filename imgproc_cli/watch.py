"""Following images to `done` or `error`: the project's WebSocket, else polling.

The socket sends a snapshot of the project, then one event per change. If it cannot be
opened, closes, or goes silent past the server's ping interval, the images left are
polled with `GET /images/{id}` instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from imgproc_cli import api
from imgproc_cli.errors import ApiError
from imgproc_cli.outcome import ImageProgress

logger = logging.getLogger(__name__)

# The server pings after 20 s of silence: twice that without a message means a dead socket.
SILENCE_SECONDS = 45.0
OPEN_SECONDS = 10.0
POLL_SECONDS = 1.0
SOCKET_FAILURES = (WebSocketException, OSError, TimeoutError, ApiError, ValueError)

OnChange = Callable[[Mapping[str, ImageProgress]], None]


class Tracker:
    """The images being waited for, updated from socket messages or `GET /images/{id}`."""

    def __init__(self, image_ids: list[str]) -> None:
        self.images = {image_id: ImageProgress() for image_id in image_ids}

    def unfinished(self) -> list[str]:
        return [image_id for image_id, image in self.images.items() if not image.final]

    def apply_image(self, image: Mapping[str, Any]) -> None:
        """An image in the shape of `GET /images/{id}` (also the snapshot's)."""
        tracked = self.images.get(str(image.get("image_id")))
        if tracked is None:
            return
        tracked.state = str(image["state"])
        error = image.get("error")
        tracked.error_code = str(error["code"]) if isinstance(error, dict) else None
        derivatives = {k: v for k, v in (image.get("versions") or {}).items() if k != "original"}
        tracked.versions_done = {name for name, link in derivatives.items() if link}
        tracked.versions_total = len(derivatives) or None

    def apply_event(self, message: Mapping[str, Any]) -> list[str]:
        """Apply one socket message; after a snapshot, the ids it did not include."""
        kind = message.get("type")
        if kind == "snapshot":
            for image in message.get("images", []):
                self.apply_image(image)
            seen = {str(image.get("image_id")) for image in message.get("images", [])}
            # The snapshot holds a project's oldest images only, up to the API's limit.
            return [image_id for image_id in self.unfinished() if image_id not in seen]
        tracked = self.images.get(str(message.get("image_id")))
        if tracked is not None and kind == "state":
            tracked.state = str(message["state"])
            tracked.error_code = message.get("error_code")
        elif tracked is not None and kind == "version":
            tracked.versions_done.add(str(message["version"]))
        return []


async def follow_images(
    client: httpx.AsyncClient,
    connection: api.Connection,
    project_id: int,
    tracker: Tracker,
    on_change: OnChange,
) -> None:
    """Follow every image until it is final (callers bound the wait with `asyncio.timeout`)."""
    try:
        await follow_socket(client, connection, project_id, tracker, on_change)
    except SOCKET_FAILURES as error:
        logger.warning("live updates unavailable (%s); polling instead", _why(error))
        await poll(client, tracker, on_change)


async def follow_socket(
    client: httpx.AsyncClient,
    connection: api.Connection,
    project_id: int,
    tracker: Tracker,
    on_change: OnChange,
) -> None:
    token = await api.websocket_token(client, project_id)
    url = connection.ws_url(project_id, token)
    async with connect(
        url, open_timeout=OPEN_SECONDS, additional_headers=connection.headers()
    ) as socket:
        while tracker.unfinished():
            message = await _receive(socket)
            for image_id in tracker.apply_event(message):
                tracker.apply_image(await api.get_image(client, image_id))
            on_change(tracker.images)


async def poll(client: httpx.AsyncClient, tracker: Tracker, on_change: OnChange) -> None:
    while True:
        for image_id in tracker.unfinished():
            await _poll_once(client, tracker, image_id)
        on_change(tracker.images)
        if not tracker.unfinished():
            return
        await asyncio.sleep(POLL_SECONDS)


async def _poll_once(client: httpx.AsyncClient, tracker: Tracker, image_id: str) -> None:
    try:
        tracker.apply_image(await api.get_image(client, image_id))
    except ApiError as error:
        if error.status == 404:  # gone: it can never be done
            tracker.images[image_id].state = "error"
            tracker.images[image_id].error_code = error.code
        else:  # a 503 while a dependency is down: ask again next round
            logger.warning("image %s: %s %s", image_id, error.status, error.code)
    except httpx.TransportError as error:
        logger.warning("image %s: %s", image_id, _why(error))


async def _receive(socket: ClientConnection) -> Mapping[str, Any]:
    text = await asyncio.wait_for(socket.recv(), SILENCE_SECONDS)
    message = json.loads(text)
    if not isinstance(message, dict):
        raise ValueError("a WebSocket message that is not an object")
    return message


def _why(error: BaseException) -> str:
    return str(error) or type(error).__name__

"""Following images over a real WebSocket server, and falling back to polling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.server import ServerConnection, serve

from imgproc_cli import api
from imgproc_cli.outcome import ImageProgress
from imgproc_cli.watch import Tracker, follow_images
from tests.imgproc_cli.fakes import FakeApi, image

A, B = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000"
Script = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def socket_server(script: Script, paths: list[str]) -> AsyncIterator[str]:
    async def handle(connection: ServerConnection) -> None:
        assert connection.request is not None
        paths.append(connection.request.path)
        await script(connection)

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


async def send(connection: ServerConnection, *messages: dict[str, Any]) -> None:
    for message in messages:
        await connection.send(json.dumps(message))


async def follow(url: str, fake: FakeApi, ids: list[str], key: str | None = None) -> Tracker:
    connection = api.Connection(url, key)
    tracker = Tracker(ids)
    seen: list[dict[str, ImageProgress]] = []
    async with api.make_client(connection, fake.transport()) as client:
        await follow_images(
            client, connection, 7, tracker, lambda images: seen.append(dict(images))
        )
    assert seen, "progress was reported"
    return tracker


async def test_a_snapshot_then_events_finish_the_images() -> None:
    processing = image(A, "processing")
    processing["versions"]["thumb"] = "http://s3/thumb"

    async def script(connection: ServerConnection) -> None:
        # B is not in the snapshot (past its limit): the client reads it with a GET.
        await send(connection, {"type": "snapshot", "images": [processing]}, {"type": "ping"})
        await send(connection, {"type": "version", "image_id": A, "version": "big_thumb"})
        await send(connection, {"type": "state", "image_id": "other", "state": "error"})
        await send(connection, {"type": "state", "image_id": A, "state": "done"})
        await connection.wait_closed()

    paths: list[str] = []
    fake = FakeApi()
    async with socket_server(script, paths) as url:
        tracker = await follow(url, fake, [A, B])
    assert paths == ["/ws/projects/7"]
    assert tracker.images[A].state == "done"
    assert tracker.images[A].versions_done == {"thumb", "big_thumb"}
    assert tracker.images[B].state == "done"
    assert [r.url.path for r in fake.requests] == [f"/images/{B}"]


async def test_an_error_event_keeps_its_code() -> None:
    async def script(connection: ServerConnection) -> None:
        await send(connection, {"type": "snapshot", "images": [image(A, "processing")]})
        await send(
            connection,
            {"type": "state", "image_id": A, "state": "error", "error_code": "invalid_image"},
        )
        await connection.wait_closed()

    async with socket_server(script, []) as url:
        tracker = await follow(url, FakeApi(), [A])
    assert (tracker.images[A].state, tracker.images[A].error_code) == ("error", "invalid_image")


async def test_with_a_key_the_socket_carries_a_token() -> None:
    fake = FakeApi()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/projects/7/ws-token":
            return httpx.Response(200, json={"token": "t0k"})
        return fake.handle(request)

    async def script(connection: ServerConnection) -> None:
        await send(connection, {"type": "snapshot", "images": [image(A, "done")]})
        await connection.wait_closed()

    paths: list[str] = []
    async with socket_server(script, paths) as url:
        connection = api.Connection(url, "k")
        tracker = Tracker([A])
        async with api.make_client(connection, httpx.MockTransport(handle)) as client:
            await follow_images(client, connection, 7, tracker, lambda images: None)
    assert paths == ["/ws/projects/7?token=t0k"]


async def test_a_closed_socket_falls_back_to_polling() -> None:
    async def script(connection: ServerConnection) -> None:
        await send(connection, {"type": "snapshot", "images": [image(A, "processing")]})
        await connection.close(1013, "too slow")

    fake = FakeApi()
    fake.states[A] = ["processing", "done"]
    async with socket_server(script, []) as url:
        tracker = await follow(url, fake, [A])
    assert tracker.images[A].state == "done"
    assert [r.url.path for r in fake.requests] == [f"/images/{A}"] * 2

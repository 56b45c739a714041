"""`/ws/projects/{project_id}`: a snapshot of the project, then its events as they happen.

Messages (JSON):
- `{"type": "snapshot", "project_id", "counts", "total", "images": [...], "next_cursor",
  "order": "newest", "last_event_id"}` first, and again after a `resync` (the API lost its
  event feed for a moment). `images` is the newest page in the spec's summary shape, and
  the message is at most 256 KB whatever the project's size: read the rest with
  `GET /projects/{id}/images?cursor=<next_cursor>`;
- `{"type": "state", "id", "image_id", "project_id", "state", "error_code"}`;
- `{"type": "version", "id", "image_id", "project_id", "version", "width", "height", "url"}`;
- `{"type": "ping"}` after `PING_SECONDS` of silence. A client may send `{"type": "ping"}`
  and gets `{"type": "pong"}`.

Every event has an `id`. A client that reconnects with `?since=<the largest id it saw>`
(or `last_event_id` of its snapshot) gets `{"type": "resumed", "since"}` and the events
logged since instead of a snapshot; a few it saw already may come again (drop repeated
ids). When the log no longer reaches back that far it gets a snapshot, as on a first
connect.

A client that cannot keep up is closed with 1013 and should reconnect. With keys
(`AUTH_MODE=keys`), a client needs a token from `POST /projects/{id}/ws-token` (`?token=`)
or its key as `Authorization: Bearer`; a refused socket (bad token or Origin, another
tenant's project) is closed with 1008, and so is an open one whose key is revoked or
expires (checked every WS_KEY_CHECK_SECONDS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from api.auth import AccessControl
from api.dependency_errors import dependency_errors
from api.errors import ServiceUnavailableError
from api.events import Subscription
from api.links import Linker
from api.listing import snapshot
from api.resources import Resources
from api.ws_admission import KEY_REVOKED, ws_admission
from core.events import last_event_id, replay

logger = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

PING_SECONDS = 20.0
SEND_TIMEOUT_SECONDS = 10.0
TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008


@router.websocket("/ws/projects/{project_id}")
async def project_events(
    websocket: WebSocket, project_id: int, token: str | None = None, since: int | None = None
) -> None:
    resources: Resources = websocket.app.state.resources
    # Accepted first so that a refusal is a 1008 close with a reason, not a bare HTTP 403.
    await websocket.accept()
    admitted, key_id = await _admitted(websocket, resources, project_id, token)
    if not admitted:
        return
    # Subscribe before reading the snapshot, so no change falls between the two.
    subscription = resources.events.subscribe(project_id)
    try:
        await _catch_up(websocket, resources, subscription, since)
        await _serve(websocket, subscription, resources, key_id)
    except (WebSocketDisconnect, TimeoutError):
        pass
    finally:
        resources.events.unsubscribe(subscription)


async def _admitted(
    websocket: WebSocket, resources: Resources, project_id: int, token: str | None
) -> tuple[bool, str | None]:
    access: AccessControl = websocket.app.state.access
    try:
        with dependency_errors():
            admission = await run_in_threadpool(
                ws_admission, access, resources.sessions, websocket.headers, project_id, token
            )
    except ServiceUnavailableError:
        await websocket.close(TRY_AGAIN_LATER, "the database is unavailable; retry")
        return False, None
    if admission.refusal is not None:
        logger.info("refused a WebSocket for project %s: %s", project_id, admission.refusal)
        await websocket.close(POLICY_VIOLATION, admission.refusal)
        return False, None
    return True, admission.key_id


async def _catch_up(
    websocket: WebSocket, resources: Resources, subscription: Subscription, since: int | None
) -> None:
    """The events logged after `since`, or a snapshot when they cannot be replayed."""
    project_id = subscription.project_id
    if since is not None:

        def read() -> list[dict[str, Any]] | None:
            with resources.sessions() as session:
                return replay(session, project_id, since)

        events = await run_in_threadpool(read)
        if events is not None:
            await _send(websocket, {"type": "resumed", "since": since})
            linker = _linker(websocket, resources)
            for event in events:
                subscription.seen.add(event["id"])
                await _send(websocket, _with_url(event, linker))
            return
    await _send(websocket, await _snapshot(websocket, resources, project_id))


async def _snapshot(websocket: WebSocket, resources: Resources, project_id: int) -> dict[str, Any]:
    linker = _linker(websocket, resources)

    def build() -> dict[str, Any]:
        with resources.sessions() as session:
            # Read first: events after it reach the subscription, which already exists.
            last_id = last_event_id(session)
            return snapshot(session, linker, project_id, last_id)

    return await run_in_threadpool(build)


def _linker(websocket: WebSocket, resources: Resources) -> Linker:
    base = str(websocket.base_url)
    http_base = "http" + base.removeprefix("ws") if base.startswith("ws") else base
    return Linker(resources.links, http_base, resources.links.expiry())


async def _serve(
    websocket: WebSocket, subscription: Subscription, resources: Resources, key_id: str | None
) -> None:
    tasks = {
        asyncio.create_task(_forward(websocket, subscription, resources)),
        asyncio.create_task(_receive(websocket)),
    }
    if key_id is not None:
        tasks.add(asyncio.create_task(_watch_key(websocket, resources, key_id)))
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await task
    for task in done:
        task.result()


async def _forward(websocket: WebSocket, subscription: Subscription, resources: Resources) -> None:
    while not subscription.overflowed.is_set():
        try:
            event = await asyncio.wait_for(subscription.queue.get(), PING_SECONDS)
        except TimeoutError:
            await _send(websocket, {"type": "ping"})
            continue
        if event.get("id") in subscription.seen:
            continue  # replayed already, when this socket resumed
        await _send(websocket, await _outgoing(websocket, event, subscription, resources))
    logger.info("closing a WebSocket of project %s that fell behind", subscription.project_id)
    await websocket.close(TRY_AGAIN_LATER, "too slow; reconnect with since=<last event id>")


async def _outgoing(
    websocket: WebSocket, event: dict[str, Any], subscription: Subscription, resources: Resources
) -> dict[str, Any]:
    if event.get("type") == "resync":
        return await _snapshot(websocket, resources, subscription.project_id)
    return _with_url(event, _linker(websocket, resources))


def _with_url(event: dict[str, Any], linker: Linker) -> dict[str, Any]:
    """A version event as clients see it: a link in place of the object key."""
    if event.get("type") != "version" or "key" not in event:
        return event
    event = dict(event)
    key = event.pop("key")
    event["url"] = linker.link(event["project_id"], key, _media_type_of(key))
    return event


async def _watch_key(websocket: WebSocket, resources: Resources, key_id: str) -> None:
    """Close the socket once its key is revoked or expires, within WS_KEY_CHECK_SECONDS."""
    access: AccessControl = websocket.app.state.access
    interval = resources.settings.ws_key_check_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            with dependency_errors():
                active = await run_in_threadpool(
                    access.key_still_active, resources.sessions, key_id
                )
        except ServiceUnavailableError:
            continue  # cannot tell while Postgres is down; the next check decides
        if not active:
            logger.info("closing a WebSocket whose key %s is no longer active", key_id)
            await websocket.close(POLICY_VIOLATION, KEY_REVOKED)
            return


def _media_type_of(key: str) -> str:
    """A derivative's type, from the extension its key was written with."""
    return "image/png" if key.endswith(".png") else "image/jpeg"


async def _receive(websocket: WebSocket) -> None:
    """Answer pings; anything else a client sends is ignored."""
    while True:
        text = await websocket.receive_text()
        with contextlib.suppress(ValueError):
            message = json.loads(text)
            if isinstance(message, dict) and message.get("type") == "ping":
                await _send(websocket, {"type": "pong"})


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    # A client that stops reading must not hold this task (or its queue) forever.
    await asyncio.wait_for(websocket.send_json(message), SEND_TIMEOUT_SECONDS)

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
  and gets `{"type": "pong"}`. Anything else it sends is ignored, binary messages too; a
  text message over `MAX_CLIENT_MESSAGE_CHARS` closes the socket with 1009 unread.

Every event has an `id`. A client that reconnects with `?since=<the largest id it saw>`
(or `last_event_id` of its snapshot) gets `{"type": "resumed", "since"}` and the events
logged since instead of a snapshot; a few it saw already may come again (drop repeated
ids). When the log no longer reaches back that far it gets a snapshot, as on a first
connect.

A client that cannot keep up is closed with 1013 and should reconnect, and so is every
client while Postgres does not answer. With keys
(`AUTH_MODE=keys`), a client needs a token from `POST /projects/{id}/ws-token` (`?token=`)
or its key as `Authorization: Bearer`; a refused socket (bad token or Origin, another
tenant's project, a `project_id` or `since` out of bounds) is closed with 1008, and so is
an open one whose key is revoked or expires (checked every WS_KEY_CHECK_SECONDS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.access.auth import AccessControl
from api.access.ws_admission import KEY_REVOKED, ws_admission
from api.deps import (
    AccessDep,
    EventHubDep,
    LinkSignerDep,
    ProjectIdPath,
    SessionsDep,
    SettingsDep,
    linker_for,
)
from api.errors import (
    DEPENDENCY_ERRORS,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    close_unavailable,
)
from api.status.hub import Subscription
from api.status.links import Linker, LinkSigner
from api.status.listing import snapshot
from core.events import MAX_EVENT_ID, last_event_id, replay
from core.settings import Settings

logger = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

PING_SECONDS = 20.0
SEND_TIMEOUT_SECONDS = 10.0
MESSAGE_TOO_BIG = 1009
# A client sends only `{"type": "ping"}`: anything longer is not parsed on the loop. uvicorn
# is started with a `--ws-max-size` of this many bytes too (Dockerfile, devstack.run).
MAX_CLIENT_MESSAGE_CHARS = 4096
# Below 0 is "before the log" (a snapshot); the bounds are Postgres' bigint.
SinceQuery = Annotated[int | None, Query(ge=-MAX_EVENT_ID - 1, le=MAX_EVENT_ID)]


@router.websocket("/ws/projects/{project_id}")
async def project_events(
    websocket: WebSocket,
    project_id: ProjectIdPath,
    sessions: SessionsDep,
    signer: LinkSignerDep,
    events: EventHubDep,
    access: AccessDep,
    settings: SettingsDep,
    token: str | None = None,
    since: SinceQuery = None,
) -> None:
    feed = ProjectFeed(websocket, project_id, sessions, signer, access, settings)
    # Accepted first so that a refusal is a 1008 close with a reason, not a bare HTTP 403.
    await websocket.accept()
    admitted, key_id = await feed.admit(token)
    if not admitted:
        return
    # Subscribe before reading the snapshot, so no change falls between the two.
    subscription = events.subscribe(project_id)
    try:
        await feed.catch_up(subscription, since)
        await feed.serve(subscription, key_id)
    except (WebSocketDisconnect, TimeoutError):
        pass
    except DEPENDENCY_ERRORS as error:
        # The snapshot, a replay or a resync could not be read: try again later, as for HTTP.
        logger.warning("closing a WebSocket of project %s: %r", project_id, error)
        await close_unavailable(websocket, error)
    finally:
        events.unsubscribe(subscription)


class ProjectFeed:
    """One project's WebSocket: admission, the snapshot, then events and key checks."""

    def __init__(
        self,
        websocket: WebSocket,
        project_id: int,
        sessions: sessionmaker[Session],
        signer: LinkSigner,
        access: AccessControl,
        settings: Settings,
    ) -> None:
        self.websocket = websocket
        self.project_id = project_id
        self.sessions = sessions
        self.signer = signer
        self.access = access
        self.settings = settings

    async def admit(self, token: str | None) -> tuple[bool, str | None]:
        websocket, project_id = self.websocket, self.project_id
        try:
            admission = await run_in_threadpool(
                ws_admission, self.access, self.sessions, websocket.headers, project_id, token
            )
        except DEPENDENCY_ERRORS as error:
            # Answered here, before any message: the same fault, as a close code.
            await close_unavailable(websocket, error)
            return False, None
        if admission.refusal is not None:
            logger.info("refused a WebSocket for project %s: %s", project_id, admission.refusal)
            await websocket.close(POLICY_VIOLATION, admission.refusal)
            return False, None
        return True, admission.key_id

    async def catch_up(self, subscription: Subscription, since: int | None) -> None:
        """The events logged after `since`, or a snapshot when they cannot be replayed."""
        if since is not None:

            def read() -> list[dict[str, Any]] | None:
                with self.sessions() as session:
                    return replay(session, self.project_id, since)

            events = await run_in_threadpool(read)
            if events is not None:
                await _send(self.websocket, {"type": "resumed", "since": since})
                linker = self._linker()
                for event in events:
                    subscription.seen.add(event["id"])
                    await _send(self.websocket, _with_url(event, linker))
                return
        await _send(self.websocket, await self.snapshot())

    async def snapshot(self) -> dict[str, Any]:
        linker = self._linker()

        def build() -> dict[str, Any]:
            with self.sessions() as session:
                # Read first: events after it reach the subscription, which already exists.
                last_id = last_event_id(session)
                return snapshot(session, linker, self.project_id, last_id)

        return await run_in_threadpool(build)

    def _linker(self) -> Linker:
        # Made per message: a socket outlives any one expiry window.
        return linker_for(self.websocket, self.signer)

    async def serve(self, subscription: Subscription, key_id: str | None) -> None:
        tasks = {
            asyncio.create_task(self._forward(subscription)),
            asyncio.create_task(_receive(self.websocket)),
        }
        if key_id is not None:
            tasks.add(asyncio.create_task(self._watch_key(key_id)))
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task
        for task in done:
            task.result()

    async def _forward(self, subscription: Subscription) -> None:
        while not subscription.overflowed.is_set():
            try:
                event = await asyncio.wait_for(subscription.queue.get(), PING_SECONDS)
            except TimeoutError:
                await _send(self.websocket, {"type": "ping"})
                continue
            if event.get("id") in subscription.seen:
                continue  # replayed already, when this socket resumed
            await _send(self.websocket, await self._outgoing(event))
        logger.info("closing a WebSocket of project %s that fell behind", self.project_id)
        await self.websocket.close(
            TRY_AGAIN_LATER, "too slow; reconnect with since=<last event id>"
        )

    async def _outgoing(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("type") == "resync":
            return await self.snapshot()
        return _with_url(event, self._linker())

    async def _watch_key(self, key_id: str) -> None:
        """Close the socket once its key is revoked or expires, within WS_KEY_CHECK_SECONDS."""
        while True:
            await asyncio.sleep(self.settings.ws_key_check_seconds)
            try:
                active = await run_in_threadpool(
                    self.access.key_still_active, self.sessions, key_id
                )
            except DEPENDENCY_ERRORS:
                continue  # cannot tell while Postgres is down; the next check decides
            if not active:
                logger.info("closing a WebSocket whose key %s is no longer active", key_id)
                await self.websocket.close(POLICY_VIOLATION, KEY_REVOKED)
                return


def _with_url(event: dict[str, Any], linker: Linker) -> dict[str, Any]:
    """A version event as clients see it: a link in place of the object key."""
    if event.get("type") != "version" or "key" not in event:
        return event
    event = dict(event)
    key = event.pop("key")
    event["url"] = linker.link(event["project_id"], key, _media_type_of(key))
    return event


def _media_type_of(key: str) -> str:
    """A derivative's type, from the extension its key was written with."""
    for extension, media_type in (
        (".png", "image/png"),
        (".webp", "image/webp"),
        (".avif", "image/avif"),
    ):
        if key.endswith(extension):
            return media_type
    return "image/jpeg"


async def _receive(websocket: WebSocket) -> None:
    """Answer pings; anything else a client sends is ignored, and a long message closes."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text = message.get("text")
        if text is None:
            continue  # a binary message: not part of the protocol
        if len(text) > MAX_CLIENT_MESSAGE_CHARS:
            await websocket.close(MESSAGE_TOO_BIG, "client messages are small JSON")
            return
        if _is_ping(text):
            await _send(websocket, {"type": "pong"})


def _is_ping(text: str) -> bool:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # deep nesting fits in a short message
        return False
    return isinstance(message, dict) and message.get("type") == "ping"


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    # A client that stops reading must not hold this task (or its queue) forever.
    await asyncio.wait_for(websocket.send_json(message), SEND_TIMEOUT_SECONDS)

"""`/ws/projects/{project_id}`: a snapshot of the project, then its events as they happen.

Messages (JSON):
- `{"type": "snapshot", "project_id", "counts", "total", "images": [...]}` first, and again
  after a `resync` (the API lost its event feed for a moment);
- `{"type": "state", "image_id", "project_id", "state", "error_code"}`;
- `{"type": "version", "image_id", "project_id", "version", "width", "height", "url"}`;
- `{"type": "ping"}` after `PING_SECONDS` of silence. A client may send `{"type": "ping"}`
  and gets `{"type": "pong"}`.

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
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.access.auth import AccessControl
from api.access.ws_admission import KEY_REVOKED, ws_admission
from api.deps import AccessDep, EventHubDep, SessionsDep, SettingsDep, StorageDep
from api.errors import DEPENDENCY_ERRORS
from api.status.hub import Subscription
from api.status.views import project_public
from core.settings import Settings
from core.storage import Storage

logger = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

PING_SECONDS = 20.0
SEND_TIMEOUT_SECONDS = 10.0
SNAPSHOT_LIMIT = 1000
TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008


@router.websocket("/ws/projects/{project_id}")
async def project_events(
    websocket: WebSocket,
    project_id: int,
    sessions: SessionsDep,
    storage: StorageDep,
    events: EventHubDep,
    access: AccessDep,
    settings: SettingsDep,
    token: str | None = None,
) -> None:
    feed = ProjectFeed(websocket, project_id, sessions, storage, access, settings)
    # Accepted first so that a refusal is a 1008 close with a reason, not a bare HTTP 403.
    await websocket.accept()
    admitted, key_id = await feed.admit(token)
    if not admitted:
        return
    # Subscribe before reading the snapshot, so no change falls between the two.
    subscription = events.subscribe(project_id)
    try:
        await _send(websocket, await feed.snapshot())
        await feed.serve(subscription, key_id)
    except (WebSocketDisconnect, TimeoutError):
        pass
    finally:
        events.unsubscribe(subscription)


class ProjectFeed:
    """One project's WebSocket: admission, the snapshot, then events and key checks."""

    def __init__(
        self,
        websocket: WebSocket,
        project_id: int,
        sessions: sessionmaker[Session],
        storage: Storage,
        access: AccessControl,
        settings: Settings,
    ) -> None:
        self.websocket = websocket
        self.project_id = project_id
        self.sessions = sessions
        self.storage = storage
        self.access = access
        self.settings = settings

    async def admit(self, token: str | None) -> tuple[bool, str | None]:
        websocket, project_id = self.websocket, self.project_id
        try:
            admission = await run_in_threadpool(
                ws_admission, self.access, self.sessions, websocket.headers, project_id, token
            )
        except DEPENDENCY_ERRORS:
            # No exception handlers on a WebSocket: the same fault, as a close code.
            await websocket.close(TRY_AGAIN_LATER, "the database is unavailable; retry")
            return False, None
        if admission.refusal is not None:
            logger.info("refused a WebSocket for project %s: %s", project_id, admission.refusal)
            await websocket.close(POLICY_VIOLATION, admission.refusal)
            return False, None
        return True, admission.key_id

    async def snapshot(self) -> dict[str, Any]:
        def build() -> dict[str, Any]:
            with self.sessions() as session:
                project = project_public(
                    session, self.storage, self.project_id, SNAPSHOT_LIMIT, offset=0
                )
            return {"type": "snapshot", **project.model_dump(mode="json")}

        return await run_in_threadpool(build)

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
            await _send(self.websocket, await self._outgoing(event))
        logger.info("closing a WebSocket of project %s that fell behind", self.project_id)
        await self.websocket.close(TRY_AGAIN_LATER, "too slow; reconnect for a fresh snapshot")

    async def _outgoing(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("type") == "resync":
            return await self.snapshot()
        if event.get("type") == "version":
            event = dict(event)
            key = event.pop("key")
            event["url"] = self.storage.presign_get(key, _media_type_of(key))
        return event

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

"""Follow a project's WebSocket through restarts: when each image ended, and whether any
image was ever announced in a state behind one it had already been announced in."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect

from core.contracts import ImageState
from core.fencing import RANK

logger = logging.getLogger("bench.chaos")

FINAL = {ImageState.DONE.value, ImageState.ERROR.value}
RECONNECT_SECONDS = 0.5


@dataclass
class EventFollower:
    base_url: str
    project_id: int
    final_at: dict[str, float] = field(default_factory=dict)
    final_state: dict[str, str] = field(default_factory=dict)
    # The furthest state each image has been announced in, and announcements behind it.
    furthest: dict[str, str] = field(default_factory=dict)
    backward: list[tuple[str, str, str]] = field(default_factory=list)
    state_events: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reconnects: int = 0
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return self.base_url.replace("http://", "ws://") + f"/ws/projects/{self.project_id}"

    async def follow(self) -> None:
        """Until cancelled; a closed socket is opened again, and its snapshot catches up."""
        while True:
            try:
                async with connect(self.url, max_size=None) as socket:
                    async for message in socket:
                        self.note(json.loads(message))
            except Exception as error:  # a closed socket, a refused connect: try again
                logger.warning("event stream closed (%s); reconnecting", error)
            self.reconnects += 1
            await asyncio.sleep(RECONNECT_SECONDS)

    def note(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event.get("type") == "snapshot":
            self.subscribed.set()
            for image in event["images"]:
                self._saw(str(image["image_id"]), image["state"], now)
        elif event.get("type") == "state":
            self.state_events[event["image_id"]] += 1
            self._saw(event["image_id"], event["state"], now)

    def _saw(self, image_id: str, state: str, now: float) -> None:
        before = self.furthest.get(image_id)
        if before is not None and RANK[ImageState(state)] < RANK[ImageState(before)]:
            self.backward.append((image_id, before, state))
        elif before is None or RANK[ImageState(state)] >= RANK[ImageState(before)]:
            self.furthest[image_id] = state
        if state in FINAL and image_id not in self.final_at:
            self.final_at[image_id] = now
            self.final_state[image_id] = state
            self.changed.set()

    async def wait_final(self, image_ids: set[str], within: float) -> bool:
        """Whether every image was seen final within `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while not image_ids <= self.final_at.keys():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            missing = image_ids - self.final_at.keys()
            logger.error("%d images not final after %.0f s", len(missing), within)
            return False
        return True

"""Batches of uploads through the real product, timed by what its WebSocket announces.

`run_batch` uploads images at a fixed concurrency and waits until the project's socket
reports each one final: the end-to-end bench, the webhooks bench and the chaos soak use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.common import Product, upload
from bench.images import camera_jpeg

FINAL_STATES = ("done", "error")
BATCH_TIMEOUT_SECONDS = 600.0
# Enough of the bench's own images for every worker to take several of each activity.
WARM_UP_IMAGES = 8
WARM_UP_CONCURRENCY = 4
WARM_UP_PROJECT = 1


def make_images(count: int) -> list[bytes]:
    """Deterministic 12 MP JPEGs of about 3.8 MB; eight distinct ones (each takes a
    second to make), in turn."""
    distinct = [camera_jpeg(4000, 3000, seed=seed) for seed in range(min(count, 8))]
    return [distinct[index % len(distinct)] for index in range(count)]


@dataclass
class DoneTracker:
    """Follows a project's WebSocket and notes when each image reaches a final state."""

    url: str
    finished: dict[str, float] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    closed: bool = False

    async def follow(self) -> None:
        try:
            async with connect(self.url, max_size=None) as socket:
                async for message in socket:
                    self._note(json.loads(message))
        finally:
            self.closed = True
            self.changed.set()

    def _note(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event["type"] == "snapshot":
            # Sent first, and again after a resync: pick up what finished meanwhile.
            self.subscribed.set()
            for image in event["images"]:
                self._finish(image["image_id"], image["state"], now)
        elif event["type"] == "state":
            self._finish(event["image_id"], event["state"], now)

    def _finish(self, image_id: str, state: str, now: float) -> None:
        if state in FINAL_STATES and image_id not in self.finished:
            self.finished[image_id] = now
            self.states[image_id] = state
            self.changed.set()

    async def wait_for(self, image_ids: set[str]) -> None:
        """Return once every image is final; raise if any ended in `error`."""
        while not image_ids <= self.finished.keys():
            if self.closed:
                raise RuntimeError(f"the WebSocket {self.url} closed early")
            self.changed.clear()
            await self.changed.wait()
        failed = sorted(i for i in image_ids if self.states[i] != "done")
        if failed:
            raise RuntimeError(f"{len(failed)} images ended in error, e.g. {failed[0]}")


@dataclass(frozen=True)
class Batch:
    elapsed: float
    latencies: list[float]
    # Each upload's own time, request to 202; and first upload start to the last 202.
    upload_seconds: list[float] = field(default_factory=list)
    uploads_elapsed: float = 0.0


async def run_batch(
    product: Product, images: Sequence[bytes], concurrency: int, project_id: int
) -> Batch:
    """Upload every image at `concurrency`, and wait until the socket reports all done."""
    tracker = DoneTracker(product.ws_url(project_id))
    following = asyncio.create_task(tracker.follow())
    starts: dict[str, float] = {}
    accepted: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)
    try:
        async with asyncio.timeout(30):
            await tracker.subscribed.wait()
        async with httpx.AsyncClient(base_url=product.base_url, timeout=120) as client:

            async def send(index: int, data: bytes) -> None:
                async with gate:
                    started = time.monotonic()
                    image_id = await upload(client, project_id, f"bench-{index}.jpg", data)
                    starts[image_id] = started
                    accepted[image_id] = time.monotonic()

            first = time.monotonic()
            await asyncio.gather(*(send(i, data) for i, data in enumerate(images)))
        async with asyncio.timeout(BATCH_TIMEOUT_SECONDS):
            await tracker.wait_for(set(starts))
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    last = max(tracker.finished[image_id] for image_id in starts)
    return Batch(
        last - first,
        [tracker.finished[i] - start for i, start in starts.items()],
        [accepted[i] - start for i, start in starts.items()],
        max(accepted.values()) - first,
    )


async def warm_up(product: Product, images: Sequence[bytes]) -> None:
    """Warm the product as `bench.peers.loop_rate` warms the peers: on the images it is
    timed on, not on small ones, so the first timed round pays no first-use costs
    (connections, caches, the workers' memory growing to full-size copies)."""
    await run_batch(product, images[:WARM_UP_IMAGES], WARM_UP_CONCURRENCY, WARM_UP_PROJECT)

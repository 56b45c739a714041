"""Decoded working copies a worker keeps in memory until it has rendered every size.

The prepare activity decodes an image once and keeps the result here; the resize
activities for that image run on this worker's own task queue and render from it, so no
working copy is written to S3, read back four times, or decoded again.

Memory is bounded: the oldest copies are dropped first once `max_bytes` is reached, and
copies nobody rendered within `max_age_seconds` are dropped too. A dropped copy costs
a second decode, never an image: the resize answers `working_copy_lost` and the
workflow prepares the image again.

Each copy remembers the fence token of the preparation that made it. A resize scheduled
before that preparation (a stale one, from a preparation the workflow gave up on) neither
marks the newer copy's sizes rendered nor drops it when it is refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from temporalio.exceptions import ApplicationError

from core.contracts import ErrorCode
from core.imaging import DecodedImage

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    image: DecodedImage
    pending: set[str]
    kept_at: float = field(default_factory=time.monotonic)
    prepared_under: int = 0

    def made_before(self, token: int) -> bool:
        """Whether a resize scheduled at `token` came after this copy's preparation."""
        return self.prepared_under <= token


class WorkingCopies:
    """A thread-safe, size-bounded map from image id to its decoded copy."""

    def __init__(
        self,
        max_bytes: int,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_age = max_age_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._emptied = threading.Condition(self._lock)

    def keep(
        self,
        image_id: str,
        image: DecodedImage,
        versions: Iterable[str],
        prepared_under: int = 0,
    ) -> int:
        """Hold `image` until each of `versions` has been rendered from it; answer how
        many renders of other images were still to do (this image's queue ahead).
        `prepared_under`: the preparation's fence token."""
        with self._lock:
            self._entries.pop(image_id, None)
            queued = sum(len(entry.pending) for entry in self._entries.values())
            entry = _Entry(image, set(versions), self._clock(), prepared_under)
            self._entries[image_id] = entry
            self._drop_stale()
            self._drop_oldest_beyond_budget()
            return queued

    def get(self, image_id: str) -> DecodedImage:
        """The image's copy, or `working_copy_lost` for the workflow to prepare it again."""
        with self._lock:
            entry = self._entries.get(image_id)
        if entry is None:
            raise ApplicationError(
                f"this worker no longer holds a working copy of {image_id}",
                type=ErrorCode.WORKING_COPY_LOST,
                non_retryable=True,
            )
        return entry.image

    def rendered(self, image_id: str, version: str, rendered_under: int = 0) -> None:
        """Note one size as done (by a resize whose fence token is `rendered_under`); the
        copy goes once every size is."""
        with self._lock:
            entry = self._entries.get(image_id)
            if entry is None or not entry.made_before(rendered_under):
                return
            entry.pending.discard(version)
            if not entry.pending:
                del self._entries[image_id]
                self._emptied.notify_all()

    def discard(self, image_id: str, refused_under: int = 0) -> None:
        """Drop the image's copy at once: a newer preparation has overtaken the resize
        whose fence token is `refused_under`. A copy that newer preparation made here
        stays."""
        with self._lock:
            entry = self._entries.get(image_id)
            if entry is None or not entry.made_before(refused_under):
                return
            del self._entries[image_id]
            if not self._entries:
                self._emptied.notify_all()

    def wait_until_empty(self, timeout: float) -> bool:
        """Block until every kept copy is rendered (True) or `timeout` passes (False)."""
        with self._lock:
            return self._emptied.wait_for(lambda: not self._entries, timeout)

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return self._held_bytes()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _held_bytes(self) -> int:
        return sum(entry.image.nbytes for entry in self._entries.values())

    def _drop_stale(self) -> None:
        now = self._clock()
        for image_id, entry in list(self._entries.items()):
            if now - entry.kept_at > self._max_age:
                logger.warning("dropping the unrendered working copy of %s", image_id)
                del self._entries[image_id]

    def _drop_oldest_beyond_budget(self) -> None:
        # The newest copy always stays, even alone over budget: it is about to be used.
        while len(self._entries) > 1 and self._held_bytes() > self._max_bytes:
            image_id, _ = self._entries.popitem(last=False)
            logger.warning("working copies over budget: dropped %s", image_id)

"""Direct uploads one key may stream at once, counted in this API process.

A slow upload holds a connection, a buffered S3 part and a multipart upload for as long as
it lasts; the cap keeps one key from holding all of a process's. It is per process on
purpose: what it protects is that process, and it costs no round trip on the upload path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import RateLimitedError


class UploadSlots:
    """Used from the event loop only, so a plain counter needs no lock."""

    def __init__(self, per_key: int) -> None:
        self._per_key = per_key
        self._held: Counter[str] = Counter()

    @contextmanager
    def hold(self, key_id: str | None) -> Iterator[None]:
        """One slot for the upload's duration; 429 when the key has none left."""
        if self._per_key == 0 or key_id is None:  # off, or open mode
            yield
            return
        if self._held[key_id] >= self._per_key:
            raise RateLimitedError(
                f"at most {self._per_key} uploads at once for this key", retry_after_seconds=1
            )
        self._held[key_id] += 1
        try:
            yield
        finally:
            self._held[key_id] -= 1
            if not self._held[key_id]:
                del self._held[key_id]

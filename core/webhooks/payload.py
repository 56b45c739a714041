"""The body of a delivery: `{type, timestamp, data}` (Standard Webhooks' shape).

`data` is the image document `GET /images/{id}` answers, with freshly presigned links, so
it is built at each attempt: a retry a day later still carries links that work.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.documents import PresignedLinks, image_public
from core.models import Image
from core.storage import Storage


class PayloadTooLargeError(ValueError):
    """The body would exceed WEBHOOK_MAX_PAYLOAD_BYTES."""


def event_body(
    event: str,
    occurred_at: datetime,
    image: Image | None,
    storage: Storage,
    max_bytes: int,
    project_id: int | None = None,
) -> bytes:
    """An image's event carries its document; a project's (`reprocess.done`) its id."""
    data: dict[str, Any] = (
        image_public(image, PresignedLinks(storage)).model_dump(mode="json")
        if image is not None
        else {"project_id": project_id}
    )
    envelope = {"type": event, "timestamp": occurred_at.isoformat(), "data": data}
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > max_bytes:
        raise PayloadTooLargeError(f"the payload has {len(body)} bytes, over {max_bytes}")
    return body

"""Uploading many files at once, each streamed from disk and retried safely.

Each file gets one `Idempotency-Key` for all its attempts, so a retry after a timeout or a
503 answers the image the first attempt created instead of making a second one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from imgproc_cli import api
from imgproc_cli.errors import ApiError
from imgproc_cli.outcome import Refusal, UploadOutcome
from imgproc_cli.progress import UploadBars

logger = logging.getLogger(__name__)

ATTEMPTS = 4
# 429 is the rate limit, 503 a dependency down at ingress; both say when to come back.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_SECONDS = 30.0


async def upload_all(
    client: httpx.AsyncClient, files: list[Path], project_id: int, jobs: int, bars: UploadBars
) -> list[UploadOutcome]:
    """Upload `files` with at most `jobs` at a time; one outcome per file, in order."""
    slots = asyncio.Semaphore(jobs)

    async def one(path: Path) -> UploadOutcome:
        async with slots:
            return await _upload_file(client, path, project_id, bars)

    # A fatal error (bad key, API gone) in one upload cancels the others.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(path)) for path in files]
    return [task.result() for task in tasks]


async def _upload_file(
    client: httpx.AsyncClient, path: Path, project_id: int, bars: UploadBars
) -> UploadOutcome:
    report, finish = bars.reporter(path)
    try:
        accepted = await upload_with_retries(client, path, project_id, report)
    except ApiError as error:
        return UploadOutcome(path, error=Refusal.from_api_error(error))
    except OSError as error:
        return UploadOutcome(path, error=Refusal("unreadable_file", error.strerror or str(error)))
    except httpx.TransportError as error:
        return UploadOutcome(path, error=Refusal("no_answer", str(error) or type(error).__name__))
    finally:
        finish()
    return UploadOutcome(path, image_id=str(accepted["image_id"]))


async def upload_with_retries(
    client: httpx.AsyncClient, path: Path, project_id: int, report: Callable[[int], None]
) -> dict[str, Any]:
    """The API's 202 answer for one file, retrying what a retry can fix."""
    key = f"imgproc-cli-{uuid.uuid4()}"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await api.upload_image(client, path, project_id, key, report)
        except ApiError as error:
            if error.status not in RETRY_STATUSES or attempt == ATTEMPTS:
                raise
            delay = retry_delay(attempt, error.retry_after)
            reason = f"{error.status} {error.code}"
        except httpx.TransportError as error:  # a timeout or a dropped connection
            if attempt == ATTEMPTS:
                raise
            delay, reason = retry_delay(attempt), type(error).__name__
        logger.warning("%s: %s, retrying in %.0f s", path, reason, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """The server's Retry-After when it sent one, else 1, 2, 4 ... seconds; capped."""
    wanted = retry_after if retry_after is not None else 2.0 ** (attempt - 1)
    return min(wanted, MAX_RETRY_SECONDS)

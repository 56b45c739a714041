"""6. Error messages stored for clients name no endpoint and no internal class.

A worker whose S3 endpoint answers nothing (with one attempt per activity) ends an image
in `storage_unavailable`; what the API then shows as the image's error is our own sentence,
while the worker's log keeps the details.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from core.storage import Storage
from devstack.processes import ManagedProcess, stop_all
from devstack.run import AppCommands
from tests.e2e.conftest import spawn_worker
from tests.e2e.helpers import upload, wait_until_final
from tests.factories import jpeg_bytes
from tests.security.conftest import start_api

INTERNAL = ("http://", "127.0.0.1", "Error", "Exception", "botocore", "psycopg", "Could not")


@dataclass
class BrokenStorage:
    base_url: str
    processes: list[ManagedProcess]
    dead_endpoint: str


@pytest.fixture
def broken_storage_worker(
    migrated: None,
    storage: Storage,
    subprocess_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BrokenStorage]:
    """An API on the real S3, and the only worker of its task queue on an S3 that is gone."""
    logs = tmp_path_factory.mktemp("broken-s3-logs")
    queue = f"broken-s3-{uuid.uuid4()}"
    env = {**subprocess_env, "TEMPORAL_TASK_QUEUE": queue, "ACTIVITY_MAX_ATTEMPTS": "1"}
    # Port 1: nothing listens there, so connections are refused at once (a free port
    # picked now could be taken by another test's process later, and hang instead).
    dead = "http://127.0.0.1:1"
    worker = spawn_worker(0, AppCommands().worker, {**env, "S3_ENDPOINT_URL": dead}, logs)
    base_url, api = start_api("broken-s3-api", env, logs)
    try:
        yield BrokenStorage(base_url, [worker.process, api], dead)
    finally:
        stop_all(list(reversed([worker.process, api])), grace=10)


async def test_a_storage_outage_is_reported_without_endpoint_or_class(
    broken_storage_worker: BrokenStorage,
) -> None:
    async with httpx.AsyncClient(base_url=broken_storage_worker.base_url, timeout=30) as client:
        image_id = await upload(client, 7, "a.jpg", jpeg_bytes(320, 240))
        image = await wait_until_final(client, image_id)
    assert (image["state"], image["error"]["code"]) == ("error", "storage_unavailable")
    message = image["error"]["message"]
    assert message and not [word for word in INTERNAL if word in message], message
    worker_log = await asyncio.to_thread(broken_storage_worker.processes[0].log_path.read_text)
    assert broken_storage_worker.dead_endpoint.removeprefix("http://") in worker_log

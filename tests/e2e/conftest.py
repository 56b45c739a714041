"""The product as real processes: the API under uvicorn and two `worker.py` processes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from core.storage import Storage
from devstack.ports import free_port
from devstack.processes import ManagedProcess, find_binary, spawn, stop_all, wait_until
from devstack.run import AppCommands, api_is_healthy
from tests.conftest import REPO_ROOT

WORKERS = 2
APIS = 2
STARTUP_SECONDS = 30
_project_ids = itertools.count(int(time.time()) % 1_000_000 * 100)


@dataclass
class Product:
    """Two API processes and two workers; uploads and sockets may use either API."""

    base_urls: list[str]
    temporal_address: str
    temporal_cli: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.base_urls[0]

    def client(self, api: int = 0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_urls[api], timeout=30)

    def ws_url(self, project_id: int, api: int = 0) -> str:
        return self.base_urls[api].replace("http://", "ws://") + f"/ws/projects/{project_id}"

    def new_project_id(self) -> int:
        return next(_project_ids)


def wait_for_health(base_url: str, api: ManagedProcess) -> None:
    wait_until(lambda: api_is_healthy(base_url), STARTUP_SECONDS, "api", api)


@pytest.fixture(scope="session")
def product(
    settings: Settings,
    migrated: None,
    storage: Storage,
    subprocess_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Product]:
    logs = tmp_path_factory.mktemp("product-logs")
    commands = AppCommands()  # the same command lines `make run` uses
    processes = [
        spawn(f"worker-{i}", commands.worker, subprocess_env, logs / f"worker-{i}.log", REPO_ROOT)
        for i in range(WORKERS)
    ]
    apis: dict[str, ManagedProcess] = {}
    for i in range(APIS):
        port = free_port()
        argv = [*commands.api, "--port", str(port)]
        apis[f"http://127.0.0.1:{port}"] = spawn(
            f"api-{i}", argv, subprocess_env, logs / f"api-{i}.log", REPO_ROOT
        )
    processes.extend(apis.values())
    try:
        for base_url, api in apis.items():
            wait_for_health(base_url, api)
        yield Product(list(apis), settings.temporal_address, find_binary("temporal"), processes)
    finally:
        stop_all(list(reversed(processes)), grace=10)

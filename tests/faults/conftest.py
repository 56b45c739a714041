"""A product of its own for the fault tests, whose services they stop, kill and restart.

It never shares services with the rest of the suite: `make test-faults` runs it alone.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from alembic import command
from core.settings import Settings
from devstack.ports import free_port
from devstack.postgres import PostgresService, start_postgres
from devstack.processes import ManagedProcess, find_binary, spawn, stop_all
from devstack.run import AppCommands
from devstack.seaweed import S3Service, start_seaweedfs
from devstack.stack import LocalStack, S3Credentials, StackPorts
from devstack.temporal import TemporalService, start_temporal
from tests.conftest import REPO_ROOT, WEBHOOK_TEST_ENV, alembic_config
from tests.e2e.conftest import wait_for_health

WORKERS = 2
_project_ids = itertools.count(int(time.time()) % 1_000_000 * 100 + 50)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


@dataclass
class FaultProduct:
    """One API and two workers over services that tests take down and bring back."""

    base: Path
    stack: LocalStack
    settings: Settings
    env: dict[str, str]
    base_url: str = ""
    api: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)
    replacements: list[S3Service | PostgresService | TemporalService] = field(default_factory=list)

    @property
    def temporal_cli(self) -> Path:
        return find_binary("temporal")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=60)

    def new_project_id(self) -> int:
        return next(_project_ids)

    def start_workers(self, count: int = WORKERS) -> None:
        commands = AppCommands()
        for _ in range(count):
            name = f"worker-{uuid.uuid4().hex[:6]}"
            log = self.base / "logs" / f"{name}.log"
            self.workers.append(spawn(name, commands.worker, self.env, log, REPO_ROOT))

    def kill_workers(self) -> None:
        """kill -9, the whole process group: no graceful anything."""
        for worker in self.workers:
            worker.kill()
            worker.wait(10)
        self.workers.clear()

    def stop_s3(self) -> None:
        assert self.stack.s3 is not None
        self.stack.s3.stop()

    def start_s3(self) -> None:
        port = urlsplit(self.env["S3_ENDPOINT_URL"]).port
        assert port is not None
        credentials = S3Credentials.load_or_create(self.base / "s3" / "credentials.json")
        self.stack.s3 = start_seaweedfs(
            self.base / "s3",
            port,
            credentials.access_key,
            credentials.secret_key,
            self.base / "logs" / "seaweedfs-restarted.log",
        )
        self.replacements.append(self.stack.s3)

    def stop_postgres(self) -> None:
        assert self.stack.postgres is not None
        self.stack.postgres.stop()

    def start_postgres(self) -> None:
        self.stack.postgres = start_postgres(self.base / "pg")
        self.replacements.append(self.stack.postgres)

    def stop_temporal(self) -> None:
        assert self.stack.temporal is not None
        self.stack.temporal.stop()

    def start_temporal(self) -> None:
        ports = self.stack.ports
        assert ports.temporal is not None and ports.temporal_ui is not None
        self.stack.temporal = start_temporal(
            self.base / "temporal",
            ports.temporal,
            ports.temporal_ui,
            self.base / "logs" / "temporal-restarted.log",
        )
        self.replacements.append(self.stack.temporal)

    def start_api(self) -> None:
        port = free_port()
        argv = [*AppCommands().api, "--port", str(port)]
        self.api = spawn("api", argv, self.env, self.base / "logs" / "api.log", REPO_ROOT)
        self.base_url = f"http://127.0.0.1:{port}"
        wait_for_health(self.base_url, self.api)

    def stop(self) -> None:
        processes = [p for p in (self.api, *self.workers) if p is not None]
        stop_all(processes, grace=10)
        for service in reversed(self.replacements):
            service.stop()
        self.stack.stop()


@pytest.fixture(scope="module")
def fault_product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProduct]:
    base = tmp_path_factory.mktemp("faults")
    # Fixed for the module: a restarted Temporal must come back where clients look.
    ports = StackPorts(temporal=free_port(), temporal_ui=free_port())
    stack = LocalStack(base, ports=ports, database="imgproc_faults", environ={})
    stack.start()
    product = None
    try:
        stack.ensure_bucket()
        env = stack.env()
        values = {key.lower(): value for key, value in env.items()}
        # Open, as `make run` runs it: these tests are about outages, not keys.
        settings = Settings.model_validate(
            values | {"temporal_task_queue": f"faults-{uuid.uuid4()}", "auth_mode": "open"}
        )
        command.upgrade(alembic_config(settings.database_url), "head")
        process_env = {
            **os.environ,
            **env,
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "AUTH_MODE": settings.auth_mode,
            "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "20",
            "PYTHONUNBUFFERED": "1",
            **WEBHOOK_TEST_ENV,
        }
        product = FaultProduct(base, stack, settings, process_env)
        product.start_workers()
        product.start_api()
        yield product
    finally:
        if product is not None:
            product.stop()
        else:
            stack.stop()

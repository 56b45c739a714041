"""A product of its own whose services and workers can be killed, frozen and restarted.

The fault tests (`make test-faults`) and the chaos bench (`make bench-chaos`) both use it:
one API and some workers, as real processes, over Postgres, Temporal and S3 from
`devstack`, with the Temporal ports fixed so a restarted server comes back where the
clients look.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from alembic import command
from core.settings import Settings
from devstack.ports import free_port
from devstack.postgres import PostgresService, start_postgres
from devstack.processes import ManagedProcess, find_binary, spawn, stop_all, wait_until
from devstack.run import AppCommands, api_is_healthy
from devstack.seaweed import S3Service, start_seaweedfs
from devstack.stack import LocalStack, S3Credentials, StackPorts
from devstack.temporal import TemporalService, start_temporal
from tests.conftest import REPO_ROOT, WEBHOOK_TEST_ENV, alembic_config

WORKERS = 2
API_READY_SECONDS = 30
_project_ids = itertools.count(int(time.time()) % 1_000_000 * 100 + 50)


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
        for _ in range(count):
            self.start_worker()

    def start_worker(
        self, argv: Sequence[str] | None = None, env: dict[str, str] | None = None
    ) -> ManagedProcess:
        """`worker.py` (or `argv`), logging to a file of its own."""
        name = f"worker-{uuid.uuid4().hex[:6]}"
        log = self.base / "logs" / f"{name}.log"
        command_line = argv or AppCommands().worker
        worker = spawn(name, command_line, {**self.env, **(env or {})}, log, REPO_ROOT)
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: ManagedProcess) -> None:
        """kill -9 one worker, the whole process group."""
        worker.kill()
        worker.wait(10)
        self.workers.remove(worker)

    @staticmethod
    def freeze(worker: ManagedProcess) -> None:
        """SIGSTOP: a stalled VM, a long pause; its connections stay open."""
        os.killpg(worker.pid, signal.SIGSTOP)

    @staticmethod
    def resume(worker: ManagedProcess) -> None:
        os.killpg(worker.pid, signal.SIGCONT)

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
        base_url = self.base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: api_is_healthy(base_url), API_READY_SECONDS, "api", self.api)

    def stop(self) -> None:
        for worker in self.workers:  # a frozen process ignores SIGTERM until it resumes
            self.resume(worker)
        processes = [p for p in (self.api, *self.workers) if p is not None]
        stop_all(processes, grace=10)
        for service in reversed(self.replacements):
            service.stop()
        self.stack.stop()


@contextmanager
def running_fault_product(
    base: Path, workers: int = WORKERS, env: dict[str, str] | None = None
) -> Iterator[FaultProduct]:
    """Services, migrations, `workers` workers and the API, all stopped on the way out."""
    # Fixed for the product's life: a restarted Temporal must come back where clients look.
    ports = StackPorts(temporal=free_port(), temporal_ui=free_port())
    stack = LocalStack(base, ports=ports, database="imgproc_faults", environ={})
    stack.start()
    product = None
    try:
        stack.ensure_bucket()
        stack_env = stack.env()
        values = {key.lower(): value for key, value in stack_env.items()}
        # Open, as `make run` runs it: these tests are about outages, not keys.
        settings = Settings.model_validate(
            values | {"temporal_task_queue": f"faults-{uuid.uuid4()}", "auth_mode": "open"}
        )
        command.upgrade(alembic_config(settings.database_url), "head")
        process_env = {
            **os.environ,
            **stack_env,
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "AUTH_MODE": settings.auth_mode,
            "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "20",
            "PYTHONUNBUFFERED": "1",
            **WEBHOOK_TEST_ENV,
            **(env or {}),
        }
        product = FaultProduct(base, stack, settings, process_env)
        product.start_workers(workers)
        product.start_api()
        yield product
    finally:
        if product is not None:
            product.stop()
        else:
            stack.stop()

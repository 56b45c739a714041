"""The product as real processes: two APIs under uvicorn and three `worker.py` processes.

Every process logs JSON, and each worker serves its app and SDK metrics on ports of its own.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator, Sequence
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

WORKERS = 3
APIS = 2
STARTUP_SECONDS = 30
_project_ids = itertools.count(int(time.time()) % 1_000_000 * 100)


@dataclass
class ProductWorker:
    process: ManagedProcess
    metrics_url: str  # app metrics (prometheus_client)
    sdk_metrics_url: str  # the Temporal SDK's own endpoint


@dataclass
class Product:
    """Two API processes and three workers; uploads and sockets may use either API."""

    base_urls: list[str]
    temporal_address: str
    temporal_cli: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    workers: list[ProductWorker] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.base_urls[0]

    def client(self, api: int = 0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_urls[api], timeout=30)

    def ws_url(self, project_id: int, api: int = 0) -> str:
        return self.base_urls[api].replace("http://", "ws://") + f"/ws/projects/{project_id}"

    def new_project_id(self) -> int:
        return next(_project_ids)


def spawn_worker(index: int, argv: Sequence[str], env: dict[str, str], logs: Path) -> ProductWorker:
    """A worker with metrics ports of its own: several run on this one host."""
    app_port, sdk_port = free_port(), free_port()
    worker_env = {
        **env,
        "WORKER_METRICS_PORT": str(app_port),
        "WORKER_SDK_METRICS_PORT": str(sdk_port),
    }
    process = spawn(f"worker-{index}", argv, worker_env, logs / f"worker-{index}.log", REPO_ROOT)
    return ProductWorker(
        process,
        f"http://127.0.0.1:{app_port}/metrics",
        f"http://127.0.0.1:{sdk_port}/metrics",
    )


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
    env = {**subprocess_env, "LOG_FORMAT": "json"}
    workers = [spawn_worker(i, commands.worker, env, logs) for i in range(WORKERS)]
    processes = [worker.process for worker in workers]
    apis: dict[str, ManagedProcess] = {}
    for i in range(APIS):
        port = free_port()
        argv = [*commands.api, "--port", str(port)]
        apis[f"http://127.0.0.1:{port}"] = spawn(
            f"api-{i}", argv, env, logs / f"api-{i}.log", REPO_ROOT
        )
    processes.extend(apis.values())
    try:
        for base_url, api in apis.items():
            wait_for_health(base_url, api)
        temporal_cli = find_binary("temporal")
        yield Product(list(apis), settings.temporal_address, temporal_cli, processes, workers)
    finally:
        stop_all(list(reversed(processes)), grace=10)


@dataclass
class Tenant:
    """A key and the one project it may use."""

    key: str
    project_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class KeyedProduct:
    """Two more API processes started with API_KEYS; the `product` fixture's workers serve them."""

    base_urls: list[str]
    tenant_a: Tenant
    tenant_b: Tenant
    rate_tenant: Tenant  # the only key that spends its upload and control budgets on purpose
    operator_key: str  # scoped to every project
    ws_token_secret: str
    allowed_origin: str
    upload_rate_limit: int
    control_rate_limit: int
    link_expiry_seconds: int

    def client(self, api: int = 0, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_urls[api], timeout=30, headers=headers)

    def ws_url(self, project_id: int, api: int = 0, token: str | None = None) -> str:
        url = self.base_urls[api].replace("http://", "ws://") + f"/ws/projects/{project_id}"
        return f"{url}?token={token}" if token is not None else url


@pytest.fixture(scope="session")
def keyed_product(
    product: Product, subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KeyedProduct]:
    tenants = [Tenant(secrets.token_urlsafe(32), product.new_project_id()) for _ in range(3)]
    operator_key = secrets.token_urlsafe(32)
    keyed = KeyedProduct(
        [],
        tenant_a=tenants[0],
        tenant_b=tenants[1],
        rate_tenant=tenants[2],
        operator_key=operator_key,
        ws_token_secret=secrets.token_urlsafe(32),
        allowed_origin="http://allowed.example",
        upload_rate_limit=5,
        control_rate_limit=30,
        link_expiry_seconds=120,
    )
    api_keys = ";".join([*(f"{t.key}:{t.project_id}" for t in tenants), f"{operator_key}:*"])
    env = {
        **subprocess_env,
        "AUTH_MODE": "keys",
        "API_KEYS": api_keys,
        "WS_TOKEN_SECRET": keyed.ws_token_secret,
        "WS_ALLOWED_ORIGINS": keyed.allowed_origin,
        "UPLOAD_RATE_LIMIT_PER_MINUTE": str(keyed.upload_rate_limit),
        "CONTROL_RATE_LIMIT_PER_MINUTE": str(keyed.control_rate_limit),
        "LINK_EXPIRY_SECONDS": str(keyed.link_expiry_seconds),
    }
    logs = tmp_path_factory.mktemp("keyed-api-logs")
    apis: dict[str, ManagedProcess] = {}
    for i in range(APIS):
        port = free_port()
        argv = [*AppCommands().api, "--port", str(port)]
        apis[f"http://127.0.0.1:{port}"] = spawn(
            f"keyed-api-{i}", argv, env, logs / f"keyed-api-{i}.log", REPO_ROOT
        )
    try:
        for base_url, api in apis.items():
            wait_for_health(base_url, api)
        keyed.base_urls = list(apis)
        yield keyed
    finally:
        stop_all(list(apis.values()), grace=10)

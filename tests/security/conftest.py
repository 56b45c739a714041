"""API processes started the way an operator would run them in production: AUTH_MODE=keys,
with keys, a WebSocket secret, and the request bounds tightened so that tests of them are
quick. The `product` fixture's workers serve their images (they share the task queue).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devstack.ports import free_port
from devstack.processes import ManagedProcess, spawn, stop_all
from devstack.run import AppCommands
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Product, Tenant, wait_for_health
from tests.e2e.conftest import product as product  # the workers these APIs' images use

# Tight bounds, so that their tests take seconds.
SECURE_ENV = {
    "AUTH_MODE": "keys",
    "WS_KEY_CHECK_SECONDS": "1",
    "UPLOAD_RATE_GRACE_SECONDS": "2",
    "UPLOAD_MIN_BYTES_PER_SECOND": "65536",
    "UPLOAD_DEADLINE_SECONDS": "20",
    "UPLOAD_CONCURRENCY_PER_KEY": "1",
    "JSON_BODY_MAX_BYTES": "16384",
    "LOG_FORMAT": "text",  # uvicorn's own access-log format, as most deployments print it
}


@dataclass
class SecureApi:
    base_url: str
    process: ManagedProcess
    tenant: Tenant
    operator_key: str
    ws_token_secret: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self, key: str | None = None, **options: object) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, timeout=30, headers=headers, **options)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return self.process.log_path.read_text(errors="replace")


def start_api(
    name: str, env: Mapping[str, str], logs: Path, *, healthy: bool = True
) -> tuple[str, ManagedProcess]:
    port = free_port()
    argv = [*AppCommands().api, "--port", str(port)]
    process = spawn(name, argv, dict(env), logs / f"{name}.log", REPO_ROOT)
    base_url = f"http://127.0.0.1:{port}"
    if healthy:
        try:
            wait_for_health(base_url, process)
        except BaseException:
            process.stop(5)
            raise
    return base_url, process


@pytest.fixture(scope="session")
def secure_api(
    product: Product, subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureApi]:
    tenant = Tenant(secrets.token_urlsafe(32), product.new_project_id())
    operator_key = secrets.token_urlsafe(32)
    ws_token_secret = secrets.token_urlsafe(32)
    env = {
        **subprocess_env,
        **SECURE_ENV,
        "API_KEYS": f"{tenant.key}:{tenant.project_id};{operator_key}:*",
        "WS_TOKEN_SECRET": ws_token_secret,
    }
    base_url, process = start_api("secure-api", env, tmp_path_factory.mktemp("secure-logs"))
    try:
        yield SecureApi(base_url, process, tenant, operator_key, ws_token_secret, env)
    finally:
        stop_all([process], grace=10)


@pytest.fixture
def stored_key_api(
    product: Product, subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureApi]:
    """AUTH_MODE=keys and no API_KEYS: only keys stored in Postgres can open it."""
    ws_token_secret = secrets.token_urlsafe(32)
    env = {**subprocess_env, **SECURE_ENV, "WS_TOKEN_SECRET": ws_token_secret}
    base_url, process = start_api("stored-key-api", env, tmp_path_factory.mktemp("stored-logs"))
    try:
        tenant = Tenant("", product.new_project_id())
        yield SecureApi(base_url, process, tenant, "", ws_token_secret, env)
    finally:
        stop_all([process], grace=10)

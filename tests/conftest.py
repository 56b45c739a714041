"""Session fixtures: real Postgres, Temporal and S3 on free ports, shared by the suite.

Each test gets its own task queue and workflow ids, so tests never see each other's work.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from alembic import command
from core.db import make_engine, make_sessionmaker
from core.settings import Settings
from core.storage import Storage
from core.temporal import connect_temporal
from devstack.ports import free_port
from tests.services import start_test_stack

REPO_ROOT = Path(__file__).resolve().parent.parent
# The receivers are on 127.0.0.1 over plain http, and retries must come within seconds.
WEBHOOK_TEST_ENV = {
    "WEBHOOK_ALLOW_HTTP": "true",
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "WEBHOOK_INITIAL_RETRY_SECONDS": "0.5",
    "WEBHOOK_MAX_RETRY_INTERVAL_SECONDS": "1",
    "WEBHOOK_RETRY_PERIOD_SECONDS": "300",
    "WEBHOOK_RELAY_INTERVAL_SECONDS": "1",
    "WEBHOOK_RELAY_AGE_SECONDS": "5",
}


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with start_test_stack(tmp_path_factory.mktemp("stack")) as env:
        yield env


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    values = {key.lower(): value for key, value in stack_env.items()}
    values["temporal_task_queue"] = f"test-{uuid.uuid4()}"
    values.update({key.lower(): value for key, value in WEBHOOK_TEST_ENV.items()})
    # As `make run` does; the keyed and security fixtures start APIs with AUTH_MODE=keys.
    values["auth_mode"] = "open"
    # model_validate reads no environment or .env file: the suite sees only its own stack.
    return Settings.model_validate(values)


def alembic_config(database_url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> None:
    command.upgrade(alembic_config(settings.database_url), "head")


@pytest.fixture(scope="session")
def engine(settings: Settings, migrated: None) -> Iterator[Engine]:
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="session")
def storage(settings: Settings) -> Storage:
    storage = Storage.from_settings(settings)
    storage.ensure_bucket()
    return storage


@pytest.fixture(scope="session")
async def temporal_client(settings: Settings) -> AsyncIterator[Client]:
    yield await connect_temporal(settings)


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def subprocess_env(settings: Settings, stack_env: dict[str, str]) -> dict[str, str]:
    """The environment for the api and worker processes the e2e tests start."""
    return {
        **os.environ,
        **stack_env,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "AUTH_MODE": settings.auth_mode,
        "PYTHONUNBUFFERED": "1",
        **WEBHOOK_TEST_ENV,
    }

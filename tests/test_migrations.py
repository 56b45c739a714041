"""Migrations upgrade, match the models, and downgrade cleanly, on a fresh database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from alembic import command
from core.settings import Settings
from tests.conftest import alembic_config


@pytest.fixture
def empty_database_url(settings: Settings) -> Iterator[str]:
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(settings.database_url).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


TABLES = {
    "images",
    "versions",
    "api_keys",
    "upload_windows",
    "project_state_counts",
    "event_log",
    "webhook_endpoints",
    "webhook_deliveries",
    "pending_objects",
    "worker_beats",
    "project_settings",
    "project_presets",
}


def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_upgrade(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)

    command.upgrade(config, "head")
    assert table_names(empty_database_url) == TABLES
    command.check(config)  # raises if the models and the migrations disagree

    command.downgrade(config, "base")
    assert table_names(empty_database_url) == set()

    command.upgrade(config, "head")
    assert table_names(empty_database_url) == TABLES

"""LocalStack wiring: external pass-through, credentials, and cleanup after a failed start."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from devstack.ports import LOOPBACK
from devstack.processes import StartupError
from devstack.stack import LocalStack, S3Credentials, StackConfigError, StackPorts

EXTERNAL = {
    "DATABASE_URL": "postgresql+psycopg://app:pw@db.example:5432/imgproc",
    "TEMPORAL_ADDRESS": "temporal.example:7233",
    "TEMPORAL_NAMESPACE": "images",
    "S3_ENDPOINT_URL": "https://s3.example",
    "S3_PUBLIC_ENDPOINT_URL": "https://cdn.example",
    "S3_ACCESS_KEY_ID": "key",
    "S3_SECRET_ACCESS_KEY": "secret",
    "S3_BUCKET": "theirs",
    "S3_REGION": "eu-west-1",
}


def test_external_services_are_passed_through(tmp_path: Path) -> None:
    with LocalStack(tmp_path, environ=EXTERNAL) as stack:
        assert stack.env() == EXTERNAL
        assert (stack.postgres, stack.temporal, stack.s3) == (None, None, None)
    assert not (tmp_path / "pg").exists()
    assert not (tmp_path / "s3").exists()


def test_external_s3_needs_credentials(tmp_path: Path) -> None:
    environ = {**EXTERNAL}
    del environ["S3_SECRET_ACCESS_KEY"]
    with pytest.raises(StackConfigError, match="S3_SECRET_ACCESS_KEY"):
        LocalStack(tmp_path, environ=environ).start()


def test_env_before_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        LocalStack(tmp_path).env()


def test_credentials_persist_privately(tmp_path: Path) -> None:
    path = tmp_path / "s3" / "credentials.json"
    first = S3Credentials.load_or_create(path)
    assert S3Credentials.load_or_create(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert S3Credentials.load_or_create(tmp_path / "other.json") != first


def test_failed_start_stops_what_already_started(tmp_path: Path) -> None:
    environ = {key: EXTERNAL[key] for key in ("S3_ENDPOINT_URL", "S3_ACCESS_KEY_ID")}
    environ["S3_SECRET_ACCESS_KEY"] = EXTERNAL["S3_SECRET_ACCESS_KEY"]
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        busy = StackPorts(temporal=squatter.getsockname()[1])
        stack = LocalStack(tmp_path, ports=busy, environ=environ)
        with pytest.raises(StartupError, match="temporal"):
            stack.start()
    assert stack.postgres is None
    assert not (tmp_path / "pg" / "postmaster.pid").exists()

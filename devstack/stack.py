"""All three services under one base directory, as the env vars the app reads."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from devstack.ports import free_port, free_ports
from devstack.postgres import PostgresService, start_postgres
from devstack.seaweed import REGION, S3Service, ensure_bucket, make_s3_client, start_seaweedfs
from devstack.temporal import NAMESPACE, TemporalService, start_temporal

logger = logging.getLogger(__name__)

S3_ENV_KEYS = ("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
# Setting one of these env vars replaces the embedded service with an external one.
EXTERNAL_SWITCHES = {
    "postgres": "DATABASE_URL",
    "temporal": "TEMPORAL_ADDRESS",
    "s3": "S3_ENDPOINT_URL",
}


class StackConfigError(ValueError):
    """The environment names an external service but leaves out what it needs."""


@dataclass(frozen=True)
class StackPorts:
    """Ports to bind; None picks a free one."""

    temporal: int | None = None
    temporal_ui: int | None = None
    s3: int | None = None


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def load_or_create(cls, path: Path) -> S3Credentials:
        """Read the pair from `path`, generating it on first use.

        The pair must outlive the process: objects written before a restart are only
        reachable with the same identity.
        """
        if path.exists():
            stored = json.loads(path.read_text())
            return cls(stored["access_key"], stored["secret_key"])
        credentials = cls("DEV" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(
                {"access_key": credentials.access_key, "secret_key": credentials.secret_key},
                handle,
            )
        return credentials


class LocalStack:
    """Postgres, Temporal and S3 under `base_dir`, or the external ones the environment names.

    Setting DATABASE_URL, TEMPORAL_ADDRESS or S3_ENDPOINT_URL in `environ` skips that
    embedded service and passes the external settings through. Use it as a context
    manager; services stop in reverse order, also when startup fails halfway.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        ports: StackPorts | None = None,
        database: str = "imgproc",
        bucket: str = "images",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = base_dir.resolve()
        self.ports = ports or StackPorts()
        self.database = database
        self.bucket = bucket
        self.postgres: PostgresService | None = None
        self.temporal: TemporalService | None = None
        self.s3: S3Service | None = None
        self._environ = dict(os.environ if environ is None else environ)
        self._env: dict[str, str] = {}
        self._exit_stack = ExitStack()

    @property
    def logs_dir(self) -> Path:
        return self.base_dir / "logs"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start what is not external, in readiness order Postgres, Temporal, S3."""
        started = time.monotonic()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._env = {**self._start_postgres(), **self._start_temporal(), **self._start_s3()}
        except BaseException:
            self.stop()
            raise
        logger.info("local stack up in %.1f s", time.monotonic() - started)

    def stop(self) -> None:
        """Stop every started service, newest first. Safe to call twice."""
        started = time.monotonic()
        self._exit_stack.close()
        self.postgres = self.temporal = self.s3 = None
        logger.info("local stack stopped in %.1f s", time.monotonic() - started)

    def is_external(self, service: str) -> bool:
        """Whether `service` ("postgres", "temporal" or "s3") comes from the environment."""
        return bool(self._environ.get(EXTERNAL_SWITCHES[service]))

    def env(self) -> dict[str, str]:
        """The settings env vars (DATABASE_URL, TEMPORAL_*, S3_*) for the app."""
        if not self._env:
            raise RuntimeError("the stack is not started")
        return dict(self._env)

    def ensure_bucket(self) -> None:
        """Create the configured bucket unless it exists (on the external S3 too)."""
        env = self.env()
        client = make_s3_client(
            env["S3_ENDPOINT_URL"],
            env["S3_ACCESS_KEY_ID"],
            env["S3_SECRET_ACCESS_KEY"],
            env["S3_REGION"],
        )
        ensure_bucket(client, env["S3_BUCKET"])

    def _start_postgres(self) -> dict[str, str]:
        if self.is_external("postgres"):
            return {"DATABASE_URL": self._environ["DATABASE_URL"]}
        self.postgres = start_postgres(self.base_dir / "pg")
        self._exit_stack.callback(self.postgres.stop)
        return {"DATABASE_URL": self.postgres.create_database(self.database)}

    def _start_temporal(self) -> dict[str, str]:
        namespace = self._environ.get("TEMPORAL_NAMESPACE", NAMESPACE)
        if self.is_external("temporal"):
            return {
                "TEMPORAL_ADDRESS": self._environ["TEMPORAL_ADDRESS"],
                "TEMPORAL_NAMESPACE": namespace,
            }
        # Probed together, so the two cannot come out equal.
        spare_port, spare_ui_port = free_ports(2)
        port = self.ports.temporal or spare_port
        ui_port = self.ports.temporal_ui or spare_ui_port
        log_path = self.logs_dir / "temporal.log"
        self.temporal = start_temporal(self.base_dir / "temporal", port, ui_port, log_path)
        self._exit_stack.callback(self.temporal.stop)
        return {"TEMPORAL_ADDRESS": self.temporal.address, "TEMPORAL_NAMESPACE": NAMESPACE}

    def _start_s3(self) -> dict[str, str]:
        if self.is_external("s3"):
            return self._external_s3_env(self._environ["S3_ENDPOINT_URL"])
        data_dir = self.base_dir / "s3"
        credentials = S3Credentials.load_or_create(data_dir / "credentials.json")
        self.s3 = start_seaweedfs(
            data_dir,
            self.ports.s3 or free_port(),
            credentials.access_key,
            credentials.secret_key,
            self.logs_dir / "seaweedfs.log",
        )
        self._exit_stack.callback(self.s3.stop)
        return _s3_env(self.s3.endpoint_url, credentials, self.bucket, REGION)

    def _external_s3_env(self, endpoint_url: str) -> dict[str, str]:
        missing = [key for key in S3_ENV_KEYS if not self._environ.get(key)]
        if missing:
            raise StackConfigError(f"S3_ENDPOINT_URL is set but {', '.join(missing)} is not")
        credentials = S3Credentials(
            self._environ["S3_ACCESS_KEY_ID"], self._environ["S3_SECRET_ACCESS_KEY"]
        )
        env = _s3_env(
            endpoint_url,
            credentials,
            self._environ.get("S3_BUCKET", self.bucket),
            self._environ.get("S3_REGION", REGION),
        )
        env["S3_PUBLIC_ENDPOINT_URL"] = self._environ.get("S3_PUBLIC_ENDPOINT_URL", endpoint_url)
        return env


def _s3_env(
    endpoint_url: str, credentials: S3Credentials, bucket: str, region: str
) -> dict[str, str]:
    return {
        "S3_ENDPOINT_URL": endpoint_url,
        # Locally, browsers reach the same loopback endpoint the app uses.
        "S3_PUBLIC_ENDPOINT_URL": endpoint_url,
        "S3_ACCESS_KEY_ID": credentials.access_key,
        "S3_SECRET_ACCESS_KEY": credentials.secret_key,
        "S3_BUCKET": bucket,
        "S3_REGION": region,
    }

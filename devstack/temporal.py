"""The Temporal dev server (`temporal server start-dev`) on a persistent SQLite file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.search_attributes import SEARCH_ATTRIBUTES
from devstack.ports import LOOPBACK, free_ports
from devstack.processes import ManagedProcess, StartupError, find_binary, spawn, wait_until

logger = logging.getLogger(__name__)

NAMESPACE = "default"
# How `search-attribute list -o json` spells each type.
_INDEXED_TYPES = {"Keyword": "INDEXED_VALUE_TYPE_KEYWORD"}
_CLI_TIMEOUT = 10.0
# Short, so the readiness loop notices soon when the server process has died.
_PROBE_TIMEOUT = 2.0


@dataclass
class TemporalService:
    """A running dev server. `address` is the gRPC frontend, `ui_url` the Web UI."""

    process: ManagedProcess
    address: str
    ui_url: str
    namespace: str = NAMESPACE

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM its process group; SIGKILL after `grace` seconds (it exits in 1-3 s)."""
        self.process.stop(grace)


def start_temporal(
    data_dir: Path, port: int, ui_port: int, log_path: Path, timeout: float = 60.0
) -> TemporalService:
    """Start the dev server with state in `data_dir/temporal.db`; return once it serves."""
    data_dir.mkdir(parents=True, exist_ok=True)
    address = f"{LOOPBACK}:{port}"
    process = spawn("temporal", _server_argv(data_dir, port, ui_port), _cli_env(), log_path)
    try:
        wait_until(lambda: _is_serving(address), timeout, "temporal", process)
        for name, kind in SEARCH_ATTRIBUTES.items():
            ensure_search_attribute(address, NAMESPACE, name, kind)
    except BaseException:
        process.stop(0)
        raise
    logger.info("temporal ready on %s", address)
    return TemporalService(process, address, f"http://{LOOPBACK}:{ui_port}")


# An activity scheduled by a workflow task goes straight back to the worker that completed
# that task, if it has a free slot, instead of through the task queue's matching.
# One partition per task queue (the dev server has 4): on one node, partitions only spread
# tasks away from the pollers waiting for them, and forward them back. Measured in
# `bench.ab` (docs/benchmarks.md): 9% less Temporal CPU per image, 15% lower batch latency.
DYNAMIC_CONFIG = {
    "system.enableActivityEagerExecution": "true",
    "matching.numTaskqueueReadPartitions": "1",
    "matching.numTaskqueueWritePartitions": "1",
}


def _server_argv(data_dir: Path, port: int, ui_port: int) -> list[str]:
    # Left unset, the HTTP API and metrics ports are picked by the server; pinning them to
    # ports we probed keeps them on loopback and out of the way of a parallel stack.
    http_port, metrics_port = free_ports(2, exclude={port, ui_port})
    return [
        str(find_binary("temporal")), "server", "start-dev",
        "--ip", LOOPBACK,
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--http-port", str(http_port),
        "--metrics-port", str(metrics_port),
        "--db-filename", str(data_dir / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        *(f"--search-attribute={name}={kind}" for name, kind in SEARCH_ATTRIBUTES.items()),
        "--log-level", "warn",
        *(f"--dynamic-config-value={key}={value}" for key, value in DYNAMIC_CONFIG.items()),
    ]  # fmt: skip


def _cli_env() -> dict[str, str]:
    # The CLI reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_* and friends; an
    # outer setting meant for the app must not redirect our calls to another server.
    return {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")}


def _cli(*args: str, timeout: float = _CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    # A bounded command timeout: against a port that accepts TCP but never answers gRPC
    # (a squatter, or a server still booting) the CLI would otherwise wait for long.
    # A user's profile file could add TLS or an API key, which a dev server does not speak.
    options = ["--command-timeout", f"{timeout:.0f}s", "--disable-config-file"]
    return subprocess.run(
        [str(find_binary("temporal")), *args, *options],
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout + 5,
        check=False,
    )


def _is_serving(address: str) -> bool:
    try:
        result = _cli("operator", "cluster", "health", "--address", address, timeout=_PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and "SERVING" in result.stdout


def custom_search_attributes(address: str, namespace: str) -> dict[str, str]:
    """Custom search attributes of `namespace`, by name, with their indexed types."""
    result = _cli(
        "operator", "search-attribute", "list",
        "--address", address, "--namespace", namespace, "--output", "json",
    )  # fmt: skip
    if result.returncode != 0:
        raise StartupError(f"cannot list search attributes on {address}: {result.stderr}")
    listing: dict[str, dict[str, str]] = json.loads(result.stdout)
    return listing.get("customAttributes", {})


def ensure_search_attribute(address: str, namespace: str, name: str, kind: str) -> None:
    """Register search attribute `name` unless it exists.

    `--search-attribute` on start-dev only takes effect when the DB file is created, so a
    data dir from an older run needs this explicit registration.
    """
    expected = _INDEXED_TYPES[kind]
    existing = custom_search_attributes(address, namespace).get(name)
    if existing is None:
        created = _cli(
            "operator", "search-attribute", "create", "--name", name, "--type", kind,
            "--address", address, "--namespace", namespace,
        )  # fmt: skip
        # Judge by a fresh listing, not by the exit code or error text: a concurrent
        # creator makes ours fail although the attribute is then there.
        existing = custom_search_attributes(address, namespace).get(name)
        if existing is None:
            raise StartupError(f"cannot create search attribute {name}: {created.stderr}")
    if existing != expected:
        raise StartupError(f"search attribute {name} is {existing}, expected {expected}")

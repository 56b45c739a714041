"""The OpenAPI document is true: schemathesis fuzzes every operation of a real API process
(keys mode, a valid key scoped to every project, the real Postgres, Temporal, S3 and
workers) with its default checks, response-schema conformance among them, and finds 0
failures. Bounded in examples so that it takes a few minutes."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.processes import spawn, stop_all
from devstack.run import AppCommands
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Product, wait_for_health

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Per operation and phase: enough to reach every documented answer, few enough for CI.
MAX_EXAMPLES = 25
RUN_TIMEOUT_SECONDS = 600


@pytest.fixture(scope="module")
def fuzzed_api(
    product: Product, subprocess_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """An API process of its own: the fuzzer's uploads spend no other test's key budget."""
    key = secrets.token_urlsafe(32)
    env = {
        **subprocess_env,
        "AUTH_MODE": "keys",
        "API_KEYS": f"{key}:*",
        "WS_TOKEN_SECRET": secrets.token_urlsafe(32),
        "UPLOAD_RATE_LIMIT_PER_MINUTE": "0",
    }
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("fuzzed-api-logs")
    api = spawn(
        "fuzzed-api", [*AppCommands().api, "--port", str(port)], env, logs / "api.log", REPO_ROOT
    )
    try:
        wait_for_health(base_url, api)
        yield base_url, key
    finally:
        stop_all([api], grace=10)


def test_every_operation_answers_as_documented(fuzzed_api: tuple[str, str], tmp_path: Path) -> None:
    base_url, key = fuzzed_api
    argv = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "14",
        "--workers",
        "2",
        "--no-color",
    ]
    result = subprocess.run(
        argv,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[output.find("FAILURES") :][:20000]
    # Every check runs by default, response_schema_conformance among them.
    assert " passed" in output and "failures" not in output.split("SUMMARY")[-1], output[-4000:]

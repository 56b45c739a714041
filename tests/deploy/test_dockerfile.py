"""The Dockerfile: a pinned small base, runtime dependencies only, a non-root user, and the
same entry points `make run` uses."""

from __future__ import annotations

import json

from api.routes.events import MAX_CLIENT_MESSAGE_CHARS
from devstack.run import AppCommands
from tests.deploy.files import DOCKERFILE, REPO_ROOT, dockerfile_instructions

INSTRUCTIONS = dockerfile_instructions()


def arguments(keyword: str) -> list[str]:
    return [args for instruction, args in INSTRUCTIONS if instruction == keyword]


def test_every_base_image_is_pinned_and_slim() -> None:
    bases = [args.split()[0] for args in arguments("FROM")]
    assert bases
    for base in bases:
        name, _, tag = base.partition(":")
        assert name == "python", base
        # A full version, not `3.11` or `latest`, so a rebuild gets the same interpreter.
        assert tag.startswith("3.11.") and tag.endswith("-slim-bookworm"), base


def test_runs_as_a_non_root_user() -> None:
    users = arguments("USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_installs_runtime_dependencies_only() -> None:
    text = DOCKERFILE.read_text()
    # The `local` extra holds the embedded servers, `dev` the test and lint tools.
    assert "[local]" not in text and "[dev]" not in text
    # Exactly the locked runtime versions, hash-checked (tests/deploy/test_lock.py).
    runs = " ".join(arguments("RUN"))
    assert "--require-hashes" in runs and "-r /tmp/requirements.lock" in runs
    assert any(args.split()[0] == "requirements.lock" for args in arguments("COPY"))


def test_default_command_serves_the_api_like_make_run() -> None:
    command = json.loads(arguments("CMD")[-1])
    # make run: python -m uvicorn api.main:create_app --factory --host ... --port ...
    uvicorn_args = list(AppCommands().api[2:5])
    assert command[:3] == uvicorn_args
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_websocket_messages_are_bounded_where_uvicorn_starts() -> None:
    # uvicorn's default is 16 MiB; the app's clients send a few bytes of JSON.
    commands = {
        "Dockerfile": json.loads(arguments("CMD")[-1]),
        "make run": list(AppCommands().api),
    }
    for where, command in commands.items():
        assert "--ws-max-size" in command, where
        size = int(command[command.index("--ws-max-size") + 1])
        assert size == MAX_CLIENT_MESSAGE_CHARS, where


def test_image_holds_what_the_entry_points_import() -> None:
    copied = " ".join(arguments("COPY"))
    for needed in (
        "alembic.ini",
        "worker.py",
        "alembic",
        "core",
        "api",
        "activities",
        "workflows",
        "workerside",
        "admin",
    ):
        assert needed in copied, needed


def test_dockerignore_keeps_local_state_out() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    # Deny everything, then allow what the image copies: .env, .data and .venv stay out.
    assert patterns[0] == "*"
    assert not {"!.env", "!.data", "!.venv", "!.git"} & set(patterns)

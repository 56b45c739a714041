"""The `imgproc` console script: parse the command line, run it, map failures to exit codes.

Expected failures (no API, a bad key, a missing file, an error answer) end with one line
on stderr and exit code 2; only a bug shows a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.logging import RichHandler

from imgproc_cli import commands, operations, presets, webhooks
from imgproc_cli.api import DEFAULT_URL, Connection
from imgproc_cli.errors import ApiError, CliError
from imgproc_cli.outcome import ExitCode

EPILOG = """\
exit codes: 0 everything accepted (with --wait: every image done); 1 a file was refused,
or an image ended in error or was not finished in time; 2 usage or connection error, a
bad key, or an error answer to `status`; 130 interrupted.
"""


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    consoles: commands.Consoles | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Run `imgproc` with `argv` (default: the command line); the exit code."""
    consoles = consoles or commands.Consoles(Console(), Console(stderr=True))
    parser = build_parser(os.environ if environ is None else environ)
    args = parser.parse_args(argv)  # exits 2 with a usage message on bad arguments
    if argv is None:  # only the real entry point configures logging
        _configure_logging(consoles.err, args.verbose)
    connection = Connection(url=args.url, api_key=args.api_key or None)
    if args.command == "upload":
        options = commands.UploadOptions(
            args.paths, args.project, args.wait, args.jobs, args.timeout
        )
        return _run(commands.upload(options, connection, consoles, transport), consoles.err)
    if args.command == "webhooks":
        hooks = webhooks.WebhookOptions(
            args.action,
            args.project,
            getattr(args, "hook_url", None),
            tuple(getattr(args, "event", None) or webhooks.EVENTS),
            getattr(args, "webhook_id", None),
            getattr(args, "keep_previous", None),
        )
        return _run(webhooks.webhooks(hooks, connection, consoles, transport), consoles.err)
    if args.command == "presets":
        wanted = presets.PresetOptions(
            args.action, args.project, getattr(args, "source", None), args.json
        )
        return _run(presets.presets(wanted, connection, consoles, transport), consoles.err)
    if args.command == "reprocess":
        run = operations.ReprocessOptions(args.project, args.action)
        return _run(operations.reprocess(run, connection, consoles, transport), consoles.err)
    if args.command == "retry":
        which = operations.RetryOptions(tuple(args.image_ids), args.project)
        if not which.image_ids and which.project_id is None:
            parser.error("retry needs image ids or --project")
        return _run(operations.retry(which, connection, consoles, transport), consoles.err)
    return _run(commands.status(args.project, connection, consoles, transport), consoles.err)


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    # The connection options are accepted before and after the command, as people type both.
    shared = argparse.ArgumentParser(add_help=False)
    _connection_options(shared, environ, argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="imgproc",
        description="Upload images to imgproc and follow their processing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(parser, environ, None)
    common: dict[str, Any] = {
        "parents": [shared],
        "epilog": EPILOG,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    upload = subcommands.add_parser("upload", help="upload files and folders", **common)
    upload.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    upload.add_argument("--project", "-p", type=_positive_int, required=True, metavar="N")
    upload.add_argument("--wait", "-w", action="store_true", help="wait, then print the links")
    upload.add_argument("--jobs", "-j", type=_positive_int, default=4, help="uploads at a time")
    upload.add_argument(
        "--timeout", type=_positive_float, default=600.0, help="seconds --wait waits at most"
    )
    status = subcommands.add_parser("status", help="a project's images as a table", **common)
    status.add_argument("project", type=_positive_int, metavar="N", help="project id")
    _webhook_commands(subcommands, common)
    _preset_commands(subcommands, common)
    _operation_commands(subcommands, common)
    return parser


def _operation_commands(subcommands: Any, common: dict[str, Any]) -> None:
    run = subcommands.add_parser(
        "reprocess", help="bring a project's images to its presets; steer or show the run", **common
    )
    run.add_argument("project", type=_positive_int, metavar="N", help="project id")
    run.add_argument("action", nargs="?", default="status", choices=operations.REPROCESS_ACTIONS)
    retry = subcommands.add_parser("retry", help="retry failed images", **common)
    retry.add_argument("image_ids", nargs="*", metavar="IMAGE_ID", help="images to retry")
    retry.add_argument(
        "--project", "-p", type=_positive_int, metavar="N", help="every failed image of it"
    )


def _preset_commands(subcommands: Any, common: dict[str, Any]) -> None:
    sets = subcommands.add_parser("presets", help="a project's presets", **common)
    actions = sets.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the current set and its version", **common)
    show.add_argument("project", type=_positive_int, metavar="N", help="project id")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    store = actions.add_parser("set", help="store a new set from a JSON file", **common)
    store.add_argument("project", type=_positive_int, metavar="N", help="project id")
    store.add_argument("source", metavar="FILE", help='JSON {"presets": [...]}, or - for stdin')
    store.add_argument("--json", action="store_true", help="print the API's JSON")


def _webhook_commands(subcommands: Any, common: dict[str, Any]) -> None:
    hooks = subcommands.add_parser("webhooks", help="a project's webhook endpoints", **common)
    actions = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add an endpoint; prints its secret once", **common)
    add.add_argument("project", type=_positive_int, metavar="N", help="project id")
    add.add_argument("hook_url", metavar="URL", help="where events are POSTed (https)")
    add.add_argument(
        "--event",
        "-e",
        action="append",
        choices=webhooks.EVENT_CHOICES,
        help="repeat; default the two image events",
    )
    listing = actions.add_parser("list", help="the project's endpoints", **common)
    listing.add_argument("project", type=_positive_int, metavar="N", help="project id")
    remove = actions.add_parser("rm", help="remove an endpoint", **common)
    remove.add_argument("project", type=_positive_int, metavar="N", help="project id")
    remove.add_argument("webhook_id", metavar="ID", help="the endpoint's id")
    rotate = actions.add_parser("rotate", help="a new secret; prints it once", **common)
    rotate.add_argument("project", type=_positive_int, metavar="N", help="project id")
    rotate.add_argument("webhook_id", metavar="ID", help="the endpoint's id")
    rotate.add_argument(
        "--keep-previous",
        type=_non_negative_int,
        metavar="SECONDS",
        help="how long the old secret also signs (default a day; 0: stop it now)",
    )


def _connection_options(
    parser: argparse.ArgumentParser, environ: Mapping[str, str], default: str | None
) -> None:
    def initial(value: object) -> object:
        return value if default is None else default

    parser.add_argument(
        "--url",
        default=initial(environ.get("IMGPROC_URL", DEFAULT_URL)),
        help=f"the API's base URL (env IMGPROC_URL; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=initial(environ.get("IMGPROC_API_KEY", "")),
        help="sent as a Bearer token (env IMGPROC_API_KEY)",
    )
    parser.add_argument(
        "--verbose", "-v", action="count", default=initial(0), help="more logging (-vv: debug)"
    )


def _run(work: Coroutine[Any, Any, ExitCode], err: Console) -> int:
    try:
        return int(asyncio.run(work))
    except KeyboardInterrupt:
        err.print("interrupted")
        return ExitCode.INTERRUPTED
    except BaseExceptionGroup as group:  # from the concurrent uploads
        return _report(_first_expected(group), err)
    except (CliError, ApiError) as error:
        return _report(error, err)


def _first_expected(group: BaseExceptionGroup[BaseException]) -> CliError | ApiError:
    """The first expected failure in a task group's; a bug (anything else) propagates."""
    for error in group.exceptions:
        if isinstance(error, CliError | ApiError):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first_expected(error)
    raise group


def _report(error: CliError | ApiError, err: Console) -> int:
    if isinstance(error, ApiError):
        message = f"the API answered {error.status} {error.code}: {error.message}"
    else:
        message = str(error)
    err.print(f"imgproc: {message}", markup=False, highlight=False, soft_wrap=True)
    return ExitCode.USAGE


def _configure_logging(console: Console, verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = RichHandler(console=console, show_path=False, show_time=verbosity > 1)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler])


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value

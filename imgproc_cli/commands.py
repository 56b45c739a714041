"""What `imgproc upload` and `imgproc status` do, given parsed options and a client."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from imgproc_cli import api, render
from imgproc_cli.discovery import IMAGE_EXTENSIONS, find_images
from imgproc_cli.errors import ApiError, CliError
from imgproc_cli.outcome import ExitCode, ImageProgress, UploadOutcome, exit_code
from imgproc_cli.progress import ProcessingBars, UploadBars
from imgproc_cli.uploads import upload_all
from imgproc_cli.watch import Tracker, follow_images


@dataclass(frozen=True)
class Consoles:
    out: Console  # results, for people and scripts
    err: Console  # progress, refusals and notes


@dataclass(frozen=True)
class UploadOptions:
    paths: list[Path]
    project_id: int
    wait: bool = False
    jobs: int = 4
    timeout: float = 600.0


async def upload(
    options: UploadOptions,
    connection: api.Connection,
    consoles: Consoles,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ExitCode:
    files = find_images(options.paths)
    if not files:
        raise CliError("no image files found (folders are searched for " + _extensions() + ")")
    async with api.make_client(connection, transport) as client:
        with UploadBars(consoles.err, files) as bars:
            uploads = await upload_all(client, files, options.project_id, options.jobs, bars)
        render.refusals(consoles.err, uploads)
        if not options.wait:
            render.accepted(consoles.out, uploads)
            return exit_code(uploads)
        images = await _wait(client, connection, options, uploads, consoles.err)
        details = await _details(client, images)
    render.results(consoles.out, uploads, images, details)
    return exit_code(uploads, images)


async def _wait(
    client: httpx.AsyncClient,
    connection: api.Connection,
    options: UploadOptions,
    uploads: list[UploadOutcome],
    err: Console,
) -> dict[str, ImageProgress]:
    tracker = Tracker([outcome.image_id for outcome in uploads if outcome.image_id])
    if not tracker.images:
        return tracker.images
    try:
        with ProcessingBars(err, len(tracker.images)) as bars:
            async with asyncio.timeout(options.timeout):
                await follow_images(client, connection, options.project_id, tracker, bars.update)
    except TimeoutError:
        left = len(tracker.unfinished())
        render.plain(err, f"gave up waiting after {options.timeout:g} s: {left} not finished")
    return tracker.images


async def _details(
    client: httpx.AsyncClient, images: Mapping[str, ImageProgress]
) -> dict[str, dict[str, Any]]:
    """Each final image as `GET /images/{id}` shows it: fresh links, sizes, error message."""
    final = [image_id for image_id, image in images.items() if image.final]
    answers = await asyncio.gather(
        *(api.get_image(client, image_id) for image_id in final), return_exceptions=True
    )
    details: dict[str, dict[str, Any]] = {}
    for image_id, answer in zip(final, answers, strict=True):
        if isinstance(answer, CliError):
            raise answer
        if isinstance(answer, dict):
            details[image_id] = answer  # otherwise the line shows what the socket said
    return details


async def status(
    project_id: int,
    connection: api.Connection,
    consoles: Consoles,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ExitCode:
    async with api.make_client(connection, transport) as client:
        images = await api.list_project_images(client, project_id)
        error_codes = await _error_codes(client, images)
    render.status_table(consoles.out, project_id, images, error_codes)
    return ExitCode.OK


async def _error_codes(client: httpx.AsyncClient, images: list[dict[str, Any]]) -> dict[str, str]:
    # The project listing has no error codes: ask for the (usually few) failed images.
    codes: dict[str, str] = {}
    for image in images:
        if image["state"] == "error":
            image_id = str(image["image_id"])
            try:
                error = (await api.get_image(client, image_id)).get("error") or {}
            except ApiError as failure:
                error = {"code": f"? ({failure.status})"}
            codes[image_id] = str(error.get("code", ""))
    return codes


def _extensions() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))

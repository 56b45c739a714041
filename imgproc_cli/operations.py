"""`imgproc reprocess` and `imgproc retry`: a project's reprocess run, and failed images.

imgproc reprocess N [start|pause|resume|cancel|status]
imgproc retry IMAGE_ID...        imgproc retry --project N
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from imgproc_cli import api
from imgproc_cli.commands import Consoles
from imgproc_cli.errors import ApiError
from imgproc_cli.outcome import ExitCode

REPROCESS_ACTIONS = ("start", "pause", "resume", "cancel", "status")
COUNTS = ("images_seen", "images_rendered", "images_current", "images_skipped", "images_failed")


@dataclass(frozen=True)
class ReprocessOptions:
    project_id: int
    action: str = "status"


@dataclass(frozen=True)
class RetryOptions:
    image_ids: tuple[str, ...] = ()
    project_id: int | None = None


async def reprocess(
    options: ReprocessOptions,
    connection: api.Connection,
    consoles: Consoles,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ExitCode:
    path = f"/projects/{options.project_id}/reprocess"
    async with api.make_client(connection, transport) as client:
        if options.action != "status":
            body = {"action": options.action}
            accepted = api.json_object(await api.send(client, "POST", path, json=body))
            consoles.err.print(f"{options.action}: {accepted['workflow_id']}", highlight=False)
        progress = api.json_object(await api.send(client, "GET", path))
    counts = "  ".join(f"{name.removeprefix('images_')} {progress[name]}" for name in COUNTS)
    line = f"{progress['state']}  presets v{progress['presets_version']}  {counts}"
    consoles.out.print(line, highlight=False, soft_wrap=True)
    return ExitCode.OK


async def retry(
    options: RetryOptions,
    connection: api.Connection,
    consoles: Consoles,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ExitCode:
    """One line per image: its outcome. Exit 1 when one could not be retried."""
    results: list[dict[str, Any]] = []
    async with api.make_client(connection, transport) as client:
        if options.project_id is not None:
            path = f"/projects/{options.project_id}/retry"
            answer = api.json_object(await api.send(client, "POST", path))
            results = list(answer["images"])
            if answer["left"]:
                consoles.err.print(f"{answer['left']} more failed images: run again")
        for image_id in options.image_ids:
            results.append(await _retry_one(client, image_id))
    for result in results:
        reason = f"  ({result['reason']})" if result.get("reason") else ""
        consoles.out.print(
            f"{result['image_id']} {result['outcome']}{reason}", highlight=False, soft_wrap=True
        )
    if not results:
        consoles.err.print("no failed images to retry")
    refused = any(result["outcome"] == "not_retryable" for result in results)
    return ExitCode.FAILED if refused else ExitCode.OK


async def _retry_one(client: httpx.AsyncClient, image_id: str) -> dict[str, Any]:
    try:
        return api.json_object(await api.send(client, "POST", f"/images/{image_id}/retry"))
    except ApiError as error:
        if error.status == 409:
            return {"image_id": image_id, "outcome": "not_retryable", "reason": error.message}
        raise

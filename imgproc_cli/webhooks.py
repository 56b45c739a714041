"""`imgproc webhooks add|list|rm|rotate`: a project's webhook endpoints.

`add` and `rotate` print the signing secret, which the API shows only then; `list` never
shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from rich.table import Table

from imgproc_cli import api
from imgproc_cli.commands import Consoles
from imgproc_cli.outcome import ExitCode

EVENTS = ("image.done", "image.error")
# What `-e` accepts: the image events (the default), and a project reprocess run's end.
EVENT_CHOICES = (*EVENTS, "reprocess.done")


@dataclass(frozen=True)
class WebhookOptions:
    action: str  # add, list, rm or rotate
    project_id: int
    url: str | None = None
    events: tuple[str, ...] = EVENTS
    webhook_id: str | None = None
    # rotate: how long the old secret goes on signing (None: the API's default, a day).
    keep_previous_seconds: int | None = None


async def webhooks(
    options: WebhookOptions,
    connection: api.Connection,
    consoles: Consoles,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ExitCode:
    base = f"/projects/{options.project_id}/webhooks"
    async with api.make_client(connection, transport) as client:
        if options.action == "add":
            body = {"url": options.url, "events": list(options.events)}
            created = api.json_object(await api.send(client, "POST", base, json=body))
            _print_created(consoles, created)
        elif options.action == "rotate":
            rotated = await _rotate(client, f"{base}/{options.webhook_id}", options)
            _print_rotated(consoles, rotated)
        elif options.action == "rm":
            await api.send(client, "DELETE", f"{base}/{options.webhook_id}")
            consoles.err.print(f"removed webhook {options.webhook_id}", highlight=False)
        else:
            listed = api.json_object(await api.send(client, "GET", base))
            consoles.out.print(_table(options.project_id, listed["webhooks"]))
    return ExitCode.OK


def _print_created(consoles: Consoles, created: dict[str, Any]) -> None:
    consoles.out.print(f"id      {created['id']}", highlight=False)
    consoles.out.print(f"secret  {created['secret']}", highlight=False, markup=False)
    consoles.err.print("store the secret now: it is not shown again (rotate it if lost)")


async def _rotate(client: httpx.AsyncClient, path: str, options: WebhookOptions) -> dict[str, Any]:
    keep = options.keep_previous_seconds
    body = {} if keep is None else {"previous_valid_seconds": keep}
    return api.json_object(await api.send(client, "POST", f"{path}/rotate-secret", json=body))


def _print_rotated(consoles: Consoles, rotated: dict[str, Any]) -> None:
    consoles.out.print(f"secret  {rotated['secret']}", highlight=False, markup=False)
    until = rotated.get("previous_secret_expires_at")
    old = f"the old one also signs until {until}" if until else "the old one no longer signs"
    consoles.err.print(f"store the new secret now: it is not shown again; {old}")


def _table(project_id: int, hooks: list[dict[str, Any]]) -> Table:
    table = Table(title=f"project {project_id}: {len(hooks)} webhooks")
    for column in ("id", "url", "events", "enabled"):
        table.add_column(column, overflow="fold")
    for hook in hooks:
        state = "yes" if hook["enabled"] else f"no ({hook['disabled_reason']})"
        table.add_row(hook["id"], hook["url"], ", ".join(hook["events"]), state)
    return table

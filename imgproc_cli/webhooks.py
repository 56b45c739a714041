"""`imgproc webhooks add|list|rm`: a project's webhook endpoints.

`add` prints the signing secret, which the API shows only once; `list` never shows it.
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
    action: str  # add, list or rm
    project_id: int
    url: str | None = None
    events: tuple[str, ...] = EVENTS
    webhook_id: str | None = None


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


def _table(project_id: int, hooks: list[dict[str, Any]]) -> Table:
    table = Table(title=f"project {project_id}: {len(hooks)} webhooks")
    for column in ("id", "url", "events", "enabled"):
        table.add_column(column, overflow="fold")
    for hook in hooks:
        state = "yes" if hook["enabled"] else f"no ({hook['disabled_reason']})"
        table.add_row(hook["id"], hook["url"], ", ".join(hook["events"]), state)
    return table

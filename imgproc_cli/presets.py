"""`imgproc presets show|set`: a project's preset set.

`set` reads a JSON file (or `-` for stdin): `{"presets": [...]}` as `GET` shows it, or
the bare list. The API checks it; a refusal prints every problem it named.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from imgproc_cli import api
from imgproc_cli.commands import Consoles
from imgproc_cli.errors import CliError
from imgproc_cli.outcome import ExitCode

# A preset set is a few KB; anything far larger is not one.
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PresetOptions:
    action: str  # show or set
    project_id: int
    source: str | None = None  # set: a path, or "-" for stdin
    as_json: bool = False


async def presets(
    options: PresetOptions,
    connection: api.Connection,
    consoles: Consoles,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ExitCode:
    path = f"/projects/{options.project_id}/presets"
    async with api.make_client(connection, transport) as client:
        if options.action == "set":
            body = {"presets": read_presets(options.source or "-")}
            current = api.json_object(await api.send(client, "PUT", path, json=body))
            consoles.err.print(f"stored as version {current['version']}", highlight=False)
        else:
            current = api.json_object(await api.send(client, "GET", path))
    if options.as_json:
        consoles.out.print_json(json.dumps(current))
    else:
        consoles.out.print(table(current))
    return ExitCode.OK


def read_presets(source: str) -> list[Any]:
    """The presets in a JSON file (or stdin), as a list; CliError when it is not one."""
    try:
        text = sys.stdin.read(MAX_FILE_BYTES + 1) if source == "-" else _read(Path(source))
        data = json.loads(text)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read presets from {source}: {error}") from error
    if isinstance(data, dict):
        data = data.get("presets")
    if not isinstance(data, list):
        raise CliError(f"{source} holds no list of presets")
    return data


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CliError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return path.read_text(encoding="utf-8")


def table(current: dict[str, Any]) -> Table:
    title = f"project {current['project_id']}: presets version {current['version']}"
    result = Table(title=title)
    for column in ("name", "box", "fit", "formats", "quality"):
        result.add_column(column)
    for preset in current["presets"]:
        fit = preset["fit"] + (f" ({preset['gravity']})" if preset["fit"] == "cover" else "")
        quality = ", ".join(f"{k} {v}" for k, v in preset.get("quality", {}).items())
        box = f"{preset['width']}x{preset['height']}"
        result.add_row(preset["name"], box, fit, ", ".join(preset["formats"]), quality or "-")
    return result

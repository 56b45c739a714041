"""A scripted imgproc API behind `httpx.MockTransport`, and consoles that record output."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from imgproc_cli.commands import Consoles

# Nothing listens on port 1, so the client's WebSocket fails at once and it polls.
UNREACHABLE_URL = "http://127.0.0.1:1"
DERIVATIVES = ("thumb", "big_thumb", "big_1920", "d2500")

Handler = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, message: str = "refused", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


def image(image_id: str, state: str, error_code: str | None = None) -> dict[str, Any]:
    """An image in the shape of `GET /images/{id}`."""
    done = state == "done"
    versions: dict[str, str | None] = {"original": f"http://s3/{image_id}/original"}
    versions |= {name: f"http://s3/{image_id}/{name}" if done else None for name in DERIVATIVES}
    details = {name: {"url": versions[name], "width": 150, "height": 100} for name in DERIVATIVES}
    return {
        "image_id": image_id,
        "state": state,
        "project_id": 7,
        "versions": versions,
        "version_details": details if done else {},
        "width": 600,
        "height": 400,
        "error": {"code": error_code, "message": "cannot read it"} if error_code else None,
    }


@dataclass
class FakeApi:
    """Answers uploads in turn from `upload_answers` (202 by default) and images from
    `states` (else `default_states`): each GET pops the image's next state, keeping the last."""

    upload_answers: list[httpx.Response] = field(default_factory=list)
    default_states: list[str] = field(default_factory=lambda: ["done"])
    states: dict[str, list[str]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path == "/upload_image":
            return self._upload(request)
        if request.method == "GET" and path.startswith("/images/"):
            image_id = path.removeprefix("/images/")
            states = self.states.setdefault(image_id, list(self.default_states))
            state = states.pop(0) if len(states) > 1 else states[0]
            return httpx.Response(200, json=image(image_id, state, _code(state)))
        return error(404, "not_found", f"no route {path}")

    def _upload(self, request: httpx.Request) -> httpx.Response:
        if self.upload_answers:
            answer = self.upload_answers.pop(0)
            if answer.status_code != 202:
                return answer
        image_id = str(uuid.uuid5(uuid.NAMESPACE_URL, request.headers["Idempotency-Key"]))
        self.uploaded.append(image_id)
        body = {"image_id": image_id, "project_id": 7, "state": "uploaded"}
        return httpx.Response(202, json=body)

    def upload_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/upload_image"]


def _code(state: str) -> str | None:
    return "invalid_image" if state == "error" else None


@dataclass
class Recorded:
    consoles: Consoles
    _out: io.StringIO
    _err: io.StringIO

    @property
    def out(self) -> str:
        return self._out.getvalue()

    @property
    def err(self) -> str:
        return self._err.getvalue()


def recorded_consoles() -> Recorded:
    out, err = io.StringIO(), io.StringIO()
    # 80 columns, like a pipe: long links and table rows must not wrap.
    consoles = Consoles(Console(file=out, width=80), Console(file=err, width=80))
    return Recorded(consoles, out, err)


def as_json(request: httpx.Request) -> Any:
    return json.loads(request.content)

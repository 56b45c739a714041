"""The project WebSocket in process: what a client may send, bounds on its parameters, and
database faults closing the socket with 1013 rather than an error."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.errors import install_error_handlers
from api.main import create_app
from api.routes.events import MAX_CLIENT_MESSAGE_CHARS
from core.contracts import MAX_PROJECT_ID
from core.settings import Settings

POLICY_VIOLATION, MESSAGE_TOO_BIG, TRY_AGAIN_LATER = 1008, 1009, 1013


def new_project_id() -> int:
    return 10**9 + uuid.uuid4().int % 10**12


def database_down(*_: Any) -> Any:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


@pytest.fixture
def client(settings: Settings, migrated: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture(autouse=True)
def no_error_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every refusal here is a clean close: a traceback from the socket is an ERROR line."""
    yield
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def url(project_id: object, query: str = "") -> str:
    return f"ws://127.0.0.1/ws/projects/{project_id}{query}"


def closed_with(client: TestClient, address: str) -> int:
    """The close code of a socket closed before any message, accepted or not."""
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(address) as socket:
        socket.receive_json()
    return closed.value.code


def test_binary_and_unparsable_messages_are_ignored(client: TestClient) -> None:
    with client.websocket_connect(url(new_project_id())) as socket:
        assert socket.receive_json()["type"] == "snapshot"
        socket.send_bytes(b"\x00\x01")  # was KeyError('text'): a 1011 close and a traceback
        socket.send_text("[" * 3000)  # deep enough for a RecursionError in json
        socket.send_text("not json")
        socket.send_json({"type": "ping"})
        assert socket.receive_json() == {"type": "pong"}


def test_a_message_over_the_bound_closes_with_1009_unparsed(client: TestClient) -> None:
    with client.websocket_connect(url(new_project_id())) as socket:
        assert socket.receive_json()["type"] == "snapshot"
        socket.send_text('{"type": "ping", "pad": "' + "x" * MAX_CLIENT_MESSAGE_CHARS + '"}')
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == MESSAGE_TOO_BIG


@pytest.mark.parametrize(
    "address",
    [
        url(0),
        url(-5),
        url(MAX_PROJECT_ID + 1),  # was a DBAPIError, then AttributeError in the 503 handler
        url(10**23),
        url(7, f"?since={-(2**63) - 1}"),  # below 0 is "before the log": a snapshot
        url(7, f"?since={2**63}"),
    ],
)
def test_parameters_out_of_bounds_close_with_1008(client: TestClient, address: str) -> None:
    assert closed_with(client, address) == POLICY_VIOLATION


def test_a_database_fault_during_the_snapshot_closes_with_1013(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.routes.events.snapshot", database_down)
    assert closed_with(client, url(new_project_id())) == TRY_AGAIN_LATER


def test_a_database_fault_during_a_replay_closes_with_1013(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.routes.events.replay", database_down)
    assert closed_with(client, url(new_project_id(), "?since=1")) == TRY_AGAIN_LATER


def test_a_database_fault_during_a_resync_closes_with_1013(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = new_project_id()
    with client.websocket_connect(url(project_id)) as socket:
        assert socket.receive_json()["type"] == "snapshot"
        monkeypatch.setattr("api.routes.events.snapshot", database_down)
        assert client.portal is not None
        hub = client.app.state.events  # type: ignore[attr-defined]
        client.portal.call(hub.dispatch, {"type": "resync", "project_id": project_id})
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == TRY_AGAIN_LATER


@pytest.mark.parametrize("accepted", [False, True])
def test_the_dependency_handler_closes_a_websocket_with_1013(accepted: bool) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.websocket("/ws")
    async def failing(websocket: WebSocket) -> None:
        if accepted:
            await websocket.accept()
        database_down()

    with TestClient(app) as client:
        assert closed_with(client, "/ws") == TRY_AGAIN_LATER

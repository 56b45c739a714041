"""The OpenAPI document says what the routes do (the fuzzer in tests/e2e checks the rest)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from api.main import create_app
from core.settings import Settings

UPLOAD_ROUTES = (("/upload_image", "post"), ("/images/", "post"))


def document(settings: Settings, auth_mode: str) -> dict[str, Any]:
    changes: dict[str, Any] = {"auth_mode": auth_mode}
    if auth_mode == "keys":
        changes["ws_token_secret"] = SecretStr("x" * 32)
    openapi: dict[str, Any] = create_app(settings.model_copy(update=changes)).openapi()
    return openapi


@pytest.mark.parametrize("auth_mode", ["open", "keys"])
def test_authorization_is_required_only_with_keys(settings: Settings, auth_mode: str) -> None:
    operation = document(settings, auth_mode)["paths"]["/upload_image"]["post"]
    optional = {} in operation["security"]
    assert optional == (auth_mode == "open")


def test_idempotency_errors_are_documented_where_they_happen(settings: Settings) -> None:
    paths = document(settings, "keys")["paths"]
    for path, method in UPLOAD_ROUTES:
        responses = paths[path][method]["responses"]
        assert {"400", "409"} <= set(responses), (path, responses.keys())

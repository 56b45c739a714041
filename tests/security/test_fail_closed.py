"""1. Authentication fails closed: AUTH_MODE decides, keys never switch it.

Through API processes started with AUTH_MODE=keys: with no key at all every data route
answers 401 and /readyz says why; revoking or expiring the last stored key closes the API
again instead of opening it; a placeholder or short WS_TOKEN_SECRET stops the API at start,
and no settings error prints the value it refused.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from core.models import ApiKey
from tests.e2e.test_access_control import every_route, keys_command
from tests.security.conftest import SECURE_ENV, SecureApi, start_api


async def assert_closed(api: SecureApi, project_id: int, *keys: str | None) -> None:
    async with api.client() as client:
        for key in keys:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            for method, path, arguments in every_route(project_id, uuid.uuid4()):
                response = await client.request(method, path, headers=headers, **arguments)
                assert response.status_code == 401, (key, method, path, response.text)
                assert response.json()["error"]["code"] == "unauthorized"


async def readiness(api: SecureApi) -> tuple[int, str]:
    async with api.client() as client:
        response = await client.get("/readyz")
    auth: str = response.json()["checks"]["auth"]
    return response.status_code, auth


async def test_revoking_or_expiring_the_last_key_never_opens_the_api(
    stored_key_api: SecureApi, subprocess_env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    api, project_id = stored_key_api, stored_key_api.tenant.project_id
    status, why = await readiness(api)
    assert status == 503 and why.startswith("no API key"), why
    await assert_closed(api, project_id, None, secrets.token_urlsafe(32))

    created = keys_command(subprocess_env, "create", "--project", str(project_id))
    fields = dict(line.split(maxsplit=1) for line in created.splitlines()[:3])
    key, key_id = fields["key"], uuid.UUID(fields["id"])
    try:
        async with api.client(key) as client:
            assert (await client.get(f"/projects/{project_id}")).status_code == 200
        assert (await readiness(api))[0] == 200

        keys_command(subprocess_env, "revoke", str(key_id))
        await assert_closed(api, project_id, None, key)
        status, why = await readiness(api)
        assert status == 503 and why.startswith("no API key"), why

        # An expired key is refused the same way, and does not open the API either.
        with sessions.begin() as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(revoked_at=None, expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        await assert_closed(api, project_id, None, key)
    finally:
        with sessions.begin() as session:
            session.execute(delete(ApiKey).where(ApiKey.id == key_id))


def test_a_key_can_be_created_with_an_expiry(
    subprocess_env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    created = keys_command(subprocess_env, "create", "--all", "--expires-in", "2h")
    fields = dict(line.split(maxsplit=1) for line in created.splitlines()[:4])
    key_id = uuid.UUID(fields["id"])
    try:
        expires = datetime.fromisoformat(fields["expires"])
        assert timedelta(minutes=119) < expires - datetime.now(UTC) <= timedelta(hours=2)
        assert f"{key_id}  *" in keys_command(subprocess_env, "list")
    finally:
        keys_command(subprocess_env, "revoke", str(key_id))
        with sessions.begin() as session:
            session.execute(delete(ApiKey).where(ApiKey.id == key_id))


REFUSED_SETTINGS = {
    "placeholder secret": ("WS_TOKEN_SECRET", "change-me-" + "x" * 40),
    "short secret": ("WS_TOKEN_SECRET", "tooShort-" + secrets.token_hex(4)),
    # A valid 40-character key, then a malformed entry: the key must not be printed.
    "malformed keys": ("API_KEYS", f"{'k' * 20}{secrets.token_hex(10)}:1;oops"),
}


@pytest.mark.parametrize("case", list(REFUSED_SETTINGS))
def test_the_api_refuses_to_start_and_names_the_setting_not_its_value(
    case: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    name, value = REFUSED_SETTINGS[case]
    env = {**subprocess_env, **SECURE_ENV, "WS_TOKEN_SECRET": secrets.token_urlsafe(32)}
    env[name] = value
    _, process = start_api("refused-api", env, tmp_path, healthy=False)
    try:
        assert process.wait(60) not in (None, 0)
    finally:
        process.stop(5)
    log = process.log_path.read_text()
    assert name in log
    secret_part = value.split(":")[0]
    for fragment in (secret_part, secret_part[:16], secret_part[-16:]):
        assert fragment not in log, f"{case}: the log shows {fragment!r}"

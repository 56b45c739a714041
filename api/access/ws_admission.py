"""Who may open `/ws/projects/{project_id}`: the Origin, then a token or an API key.

Browsers cannot set headers on a WebSocket, so they pass a token from
`POST /projects/{id}/ws-token` as `?token=`; other clients may send their key as
`Authorization: Bearer` instead. Any refusal closes the socket with 1008.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from api.access.auth import AccessControl, project_not_found
from api.access.ws_tokens import InvalidWsTokenError
from api.errors import UnauthorizedError

# Close reasons must fit a control frame (123 bytes); these name no secret.
NEEDS_TOKEN = "a token is required: POST /projects/{id}/ws-token, then ?token="
KEY_REVOKED = "the API key was revoked or has expired"


@dataclass(frozen=True)
class Admission:
    """Why the socket is refused, or the key it was opened with (checked again later)."""

    refusal: str | None
    key_id: str | None = None


def ws_admission(
    access: AccessControl,
    sessions: sessionmaker[Session],
    headers: Mapping[str, str],
    project_id: int,
    token: str | None,
) -> Admission:
    """Admit or refuse a socket. May query Postgres."""
    if not access.origin_allowed(headers.get("origin"), headers.get("host")):
        return Admission("origin not allowed")
    if access.open_mode:
        return Admission(None)
    key = _bearer_key(headers.get("authorization"))
    if key is not None:
        try:
            principal = access.authenticate(sessions, key)
        except UnauthorizedError:
            return Admission("the API key is not valid")
        if not principal.can_use(project_id):
            return Admission(project_not_found(project_id))
        return Admission(None, principal.key_id)
    if token is None:
        return Admission(NEEDS_TOKEN)
    if access.ws_tokens is None:
        return Admission("WebSocket tokens are not configured on this server")
    try:
        parsed = access.ws_tokens.verify(token, project_id)
    except InvalidWsTokenError as error:
        return Admission(f"invalid token: {error}")
    # A token outlives a revocation (or a key's removal from API_KEYS, or a narrower
    # scope) by up to its TTL unless its key is checked too.
    if not access.key_still_active(sessions, parsed.key_id, project_id):
        return Admission(KEY_REVOKED)
    return Admission(None, parsed.key_id)


def _bearer_key(header: str | None) -> str | None:
    scheme, _, key = (header or "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None

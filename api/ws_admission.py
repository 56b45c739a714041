"""Who may open `/ws/projects/{project_id}`: the Origin, then a token or an API key.

Browsers cannot set headers on a WebSocket, so they pass a token from
`POST /projects/{id}/ws-token` as `?token=`; other clients may send their key as
`Authorization: Bearer` instead. Any refusal closes the socket with 1008.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session, sessionmaker

from api.auth import AccessControl, project_not_found
from api.errors import UnauthorizedError
from api.ws_tokens import InvalidWsTokenError

# Close reasons must fit a control frame (123 bytes); these name no secret.
NEEDS_TOKEN = "a token is required: POST /projects/{id}/ws-token, then ?token="


def ws_refusal(
    access: AccessControl,
    sessions: sessionmaker[Session],
    headers: Mapping[str, str],
    project_id: int,
    token: str | None,
) -> str | None:
    """Why the socket must be refused, or None to serve it. May query Postgres."""
    if not access.origin_allowed(headers.get("origin"), headers.get("host")):
        return "origin not allowed"
    if not access.enabled(sessions):
        return None  # open mode: no key exists anywhere
    key = _bearer_key(headers.get("authorization"))
    if key is not None:
        try:
            principal = access.authenticate(sessions, key)
        except UnauthorizedError:
            return "the API key is not valid"
        return None if principal.can_use(project_id) else project_not_found(project_id)
    if token is None:
        return NEEDS_TOKEN
    if access.ws_tokens is None:
        return "WebSocket tokens are not configured on this server"
    try:
        access.ws_tokens.verify(token, project_id)
    except InvalidWsTokenError as error:
        return f"invalid token: {error}"
    return None


def _bearer_key(header: str | None) -> str | None:
    scheme, _, key = (header or "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None

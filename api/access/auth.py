"""Who is calling: API keys from `API_KEYS` or Postgres, each scoped to projects.

`AUTH_MODE` alone decides whether keys are needed, so it fails closed: in `keys` mode (the
default) every data route needs `Authorization: Bearer <key>`, and with no key at all every
one answers 401; creating, revoking or expiring keys never opens the API. `open` (only
`make run` sets it) asks for no key. A project outside the key's scope answers exactly as a
project that does not exist, so no tenant learns of another's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from api.access.keystore import any_active_key, find_active_key, hash_key, key_is_active
from api.access.ws_tokens import WsTokenSigner
from api.errors import NotFoundError, UnauthorizedError
from core.models import ApiKey
from core.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """The caller: a key id (None in open mode) and its projects (None: all)."""

    key_id: str | None
    projects: frozenset[int] | None

    @property
    def all_projects(self) -> bool:
        return self.projects is None

    def can_use(self, project_id: int) -> bool:
        return self.projects is None or project_id in self.projects

    def require_project(self, project_id: int) -> None:
        if not self.can_use(project_id):
            raise NotFoundError(project_not_found(project_id))


OPEN = Principal(key_id=None, projects=None)
# The key id WebSocket tokens carry in open mode.
OPEN_KEY_ID = "open"


def project_not_found(project_id: int) -> str:
    return f"project {project_id} does not exist"


@dataclass(frozen=True)
class ConfiguredGrant:
    digest: bytes
    principal: Principal


@dataclass(frozen=True)
class AccessControl:
    """Built once per app from the settings; DB keys are looked up per request."""

    configured: tuple[ConfiguredGrant, ...]
    ws_tokens: WsTokenSigner | None
    allowed_origins: frozenset[str]
    upload_rate_limit_per_minute: int
    control_rate_limit_per_minute: int = 0
    open_mode: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessControl:
        grants = tuple(
            _configured_grant(key.secret.get_secret_value(), key.projects)
            for key in settings.configured_api_keys
        )
        secret = settings.ws_token_secret
        signer = WsTokenSigner(secret, settings.ws_token_ttl_seconds) if secret else None
        origins = frozenset(
            origin.strip().rstrip("/").lower()
            for origin in settings.ws_allowed_origins.split(",")
            if origin.strip()
        )
        return cls(
            grants,
            signer,
            origins,
            settings.upload_rate_limit_per_minute,
            settings.control_rate_limit_per_minute,
            open_mode=settings.auth_mode == "open",
        )

    def any_key(self, sessions: sessionmaker[Session]) -> bool:
        """Whether any key could be accepted at all (for /readyz)."""
        if self.open_mode or self.configured:
            return True
        with sessions() as session:
            return any_active_key(session)

    def authenticate(self, sessions: sessionmaker[Session], presented: str | None) -> Principal:
        """OPEN in open mode; else the key's principal, or 401. May query Postgres."""
        if self.open_mode:
            return OPEN
        if presented:
            principal = self._configured_principal(presented) or _stored_principal(
                sessions, presented
            )
            if principal is not None:
                return principal
        raise UnauthorizedError(
            "a valid API key is required: Authorization: Bearer <key>"
            if presented is None
            else "the API key is not valid"
        )

    def key_still_active(
        self, sessions: sessionmaker[Session], key_id: str, project_id: int | None = None
    ) -> bool:
        """Whether the key a principal or token names may still be used (on `project_id`,
        if given). May query Postgres.

        Keys from API_KEYS last while this process's API_KEYS lists them: a token minted
        by another process, or before a restart that removed or narrowed its key, opens
        nothing. Stored keys last until revoked or expired; their scope never changes.
        """
        if self.open_mode:
            return True
        if key_id.startswith(CONFIGURED_KEY_PREFIX):
            principal = self._configured_by_id(key_id)
            return principal is not None and (project_id is None or principal.can_use(project_id))
        try:
            stored_id = uuid.UUID(key_id)
        except ValueError:
            return False  # "open" from a token of an open-mode API, or garbage
        with sessions() as session:
            return key_is_active(session, stored_id)

    def _configured_by_id(self, key_id: str) -> Principal | None:
        return next(
            (grant.principal for grant in self.configured if grant.principal.key_id == key_id),
            None,
        )

    def _configured_principal(self, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found = None
        for grant in self.configured:  # no early exit: the time taken says nothing
            if hmac.compare_digest(grant.digest, digest):
                found = grant.principal
        return found

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Browsers always send Origin on a WebSocket; other clients need not."""
        if origin is None or "*" in self.allowed_origins:
            return True
        if self.allowed_origins:
            return origin.rstrip("/").lower() in self.allowed_origins
        return host is not None and urlsplit(origin).netloc.lower() == host.lower()


CONFIGURED_KEY_PREFIX = "setting-"


def _configured_grant(key: str, projects: frozenset[int] | None) -> ConfiguredGrant:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    # The id names the key in logs and rate-limit rows without revealing it.
    principal = Principal(f"{CONFIGURED_KEY_PREFIX}{digest.hex()[:16]}", projects)
    return ConfiguredGrant(digest, principal)


def _stored_principal(sessions: sessionmaker[Session], presented: str) -> Principal | None:
    with sessions() as session:
        row = find_active_key(session, hash_key(presented))
        return None if row is None else stored_principal(row)


def stored_principal(row: ApiKey) -> Principal:
    return Principal(str(row.id), None if row.all_projects else frozenset(row.projects))

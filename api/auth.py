"""Who is calling: API keys from `API_KEYS` or Postgres, each scoped to projects.

With no key anywhere the API is open (local mode). Once any key exists, every request but
the health checks needs `Authorization: Bearer <key>`. A project outside the key's scope
answers exactly as a project that does not exist, so no tenant learns of another's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from api.errors import NotFoundError, UnauthorizedError
from api.keystore import any_active_key, find_active_key, hash_key
from api.ws_tokens import WsTokenSigner
from core.models import ApiKey
from core.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """The caller: a key id (None when the API is open) and its projects (None: all)."""

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
        return cls(grants, signer, origins, settings.upload_rate_limit_per_minute)

    def enabled(self, sessions: sessionmaker[Session]) -> bool:
        """Whether any key exists, so that every caller must present one."""
        if self.configured:
            return True
        with sessions() as session:
            return any_active_key(session)

    def authenticate(self, sessions: sessionmaker[Session], presented: str | None) -> Principal:
        """The key's principal; OPEN when no key exists at all; else 401."""
        if presented:
            principal = self._configured_principal(presented) or _stored_principal(
                sessions, presented
            )
            if principal is not None:
                return principal
        if self.enabled(sessions):
            raise UnauthorizedError(
                "a valid API key is required: Authorization: Bearer <key>"
                if presented is None
                else "the API key is not valid"
            )
        return OPEN

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


def _configured_grant(key: str, projects: frozenset[int] | None) -> ConfiguredGrant:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    # The id names the key in logs and rate-limit rows without revealing it.
    return ConfiguredGrant(digest, Principal(f"setting-{digest.hex()[:16]}", projects))


def _stored_principal(sessions: sessionmaker[Session], presented: str) -> Principal | None:
    with sessions() as session:
        row = find_active_key(session, hash_key(presented))
        return None if row is None else stored_principal(row)


def stored_principal(row: ApiKey) -> Principal:
    return Principal(str(row.id), None if row.all_projects else frozenset(row.projects))

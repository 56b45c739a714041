"""API keys kept in Postgres: only the sha256 of each key is stored.

A key is 256 random bits, so a plain sha256 (no salt, no slow hash) cannot be reversed, and
the digest can be looked up by an index.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from core.models import ApiKey

KEY_PREFIX = "imgp_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh key; the prefix makes leaked keys easy to spot in logs and scanners."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _active() -> ColumnElement[bool]:
    """Not revoked, and not past its expiry (by the database's clock, shared by every API)."""
    return and_(
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()),
    )


def find_active_key(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, _active()))


def key_is_active(session: Session, key_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(exists().where(ApiKey.id == key_id, _active()))))


def any_active_key(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(_active()))))


def create_key(
    session: Session,
    projects: frozenset[int] | None,
    name: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key scoped to `projects` (None: all); answer the row and the key itself."""
    key = new_key()
    row = ApiKey(
        id=uuid.uuid4(),
        key_hash=hash_key(key),
        name=name,
        all_projects=projects is None,
        projects=sorted(projects or ()),
        expires_at=expires_at,
    )
    session.add(row)
    session.commit()
    return row, key


def revoke_key(session: Session, key_id: uuid.UUID) -> bool:
    """Revoke a key at once; False when no active key has that id."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))

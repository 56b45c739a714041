"""Database engine and sessions. Engines are built by the entry points, never at import."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings


def make_engine(settings: Settings) -> Engine:
    return create_engine(
        str(settings.database_url),
        pool_size=settings.database_pool_size,
        pool_pre_ping=True,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    """Raise if the database does not answer."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def lock_project(session: Session, area: str, project_id: int) -> None:
    """Serialize one project's writers of `area` until the caller's transaction ends.

    A transaction-scoped advisory lock: commit or rollback releases it, so a check made
    after taking it (a count, the latest version) holds until the write commits.
    """
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:area), hashtext(:project))"),
        {"area": area, "project": str(project_id)},
    )

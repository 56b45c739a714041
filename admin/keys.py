"""Admin command for API keys stored in Postgres (hashed; a key is shown once).

    python -m admin.keys create --project 42 --project 43 [--name NAME] [--expires-in 30d]
    python -m admin.keys create --all [--name NAME] [--expires-in 12h]
    python -m admin.keys list
    python -m admin.keys revoke KEY_ID

It reads DATABASE_URL like the API. With AUTH_MODE=keys (the default), a new key works at
once on every API process; a revoked or expired one is refused at once, and its open
WebSockets close within WS_KEY_CHECK_SECONDS. Keys never change the mode itself.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from api.access.keystore import create_key, list_keys, revoke_key
from core.contracts import MAX_PROJECT_ID
from core.db import make_engine, make_sessionmaker
from core.logging import configure_logging
from core.models import ApiKey
from core.settings import Settings, get_settings

logger = logging.getLogger("admin.keys")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m admin.keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and show it once")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--project", type=_project_id, action="append", dest="projects")
    scope.add_argument("--all", action="store_true", help="every project (operators)")
    create.add_argument("--name", help="a label for `list`")
    create.add_argument(
        "--expires-in", type=_duration, help="refuse the key after this long: 90m, 12h, 30d"
    )
    commands.add_parser("list", help="every key: id, scope, created, revoked")
    revoke = commands.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id", type=uuid.UUID)
    return parser.parse_args(argv)


def _project_id(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_PROJECT_ID:
        raise argparse.ArgumentTypeError("a project id is a positive integer")
    return value


_DURATION = re.compile(r"(\d+)([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError("a duration is a positive number and m, h or d: 30d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = parse_args(argv)
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = make_engine(settings)
    try:
        return _run(args, make_sessionmaker(engine), settings)
    finally:
        engine.dispose()


def _run(args: argparse.Namespace, sessions: sessionmaker[Session], settings: Settings) -> int:
    with sessions() as session:
        if args.command == "create":
            return _create(session, args, settings)
        if args.command == "list":
            return _list(session)
        return _revoke(session, args.key_id)


def _create(session: Session, args: argparse.Namespace, settings: Settings) -> int:
    projects = None if args.all else frozenset(args.projects)
    expires_at = datetime.now(UTC) + args.expires_in if args.expires_in else None
    row, key = create_key(session, projects, args.name, expires_at)
    _out(f"id    {row.id}\nkey   {key}\nscope {_scope(row)}\n")
    if expires_at is not None:
        _out(f"expires {expires_at.isoformat(timespec='seconds')}\n")
    _out("The key is shown only this once; store it now.\n")
    if settings.ws_token_secret is None:
        # Tokens must verify on every API process, so they need the one shared secret.
        logger.warning("WS_TOKEN_SECRET is not set: start the API with it for WebSockets")
    return 0


def _list(session: Session) -> int:
    for row in list_keys(session):
        revoked = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
        if row.expires_at and not row.revoked_at:
            revoked = f"expires {row.expires_at.isoformat()}"
        created = row.created_at.isoformat()
        _out(f"{row.id}  {_scope(row)}  {created}  {revoked}  {row.name or ''}\n")
    return 0


def _revoke(session: Session, key_id: uuid.UUID) -> int:
    if revoke_key(session, key_id):
        _out(f"revoked {key_id}\n")
        return 0
    logger.error("no active key has id %s", key_id)
    return 1


def _scope(row: ApiKey) -> str:
    return "*" if row.all_projects else ",".join(str(p) for p in row.projects)


def _out(text: str) -> None:
    # Command output, not a log line: it must reach stdout as is, whatever the log level.
    sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())

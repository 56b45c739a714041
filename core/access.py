"""The `API_KEYS` setting's format, parsed without ever echoing a key.

`<key>:<project>,<project>;<key>:*` - each key with the projects it may use, or `*` for all.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from core.contracts import MAX_PROJECT_ID

# Keys and the WebSocket token secret are stored and compared as hashes, so they must be
# long enough that guessing is hopeless.
MIN_SECRET_CHARS = 32


@dataclass(frozen=True)
class ConfiguredKey:
    """One `API_KEYS` entry: the key, and its projects (None for all of them)."""

    secret: SecretStr
    projects: frozenset[int] | None


def parse_api_keys(text: str) -> tuple[ConfiguredKey, ...]:
    """Parse `key:1,2;key:*`. Errors name the entry's position, never the key itself."""
    keys: list[ConfiguredKey] = []
    for position, entry in enumerate(text.split(";"), start=1):
        if not entry.strip():
            continue
        secret, separator, scope = entry.strip().rpartition(":")
        if not separator or len(secret) < MIN_SECRET_CHARS or secret != secret.strip():
            raise ValueError(
                f"API_KEYS entry {position} must be <key>:<projects>, with a key of at "
                f"least {MIN_SECRET_CHARS} characters and no surrounding spaces"
            )
        keys.append(ConfiguredKey(SecretStr(secret), parse_scope(scope, f"entry {position}")))
    secrets = [key.secret.get_secret_value() for key in keys]
    if len(set(secrets)) != len(secrets):
        raise ValueError("API_KEYS lists the same key twice")
    return tuple(keys)


def parse_scope(scope: str, where: str) -> frozenset[int] | None:
    """`*` (every project, None) or comma-separated positive project ids."""
    if scope.strip() == "*":
        return None
    try:
        projects = frozenset(int(part) for part in scope.split(","))
    except ValueError:
        projects = frozenset()
    if not projects or not all(1 <= project <= MAX_PROJECT_ID for project in projects):
        raise ValueError(f"API_KEYS {where}: projects must be `*` or positive integers like 7,8")
    return projects

"""The security settings: who may call, and how much a request may send (see docs/security.md).

A base class of `core.settings.Settings`, kept apart because it is the part an operator
must get right before exposing the API, and so that its rules read in one place.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from core.access import MIN_SECRET_CHARS, ConfiguredKey, parse_api_keys

# `.env.example` ships secrets that start with this, so that a copy left unchanged fails.
PLACEHOLDER_PREFIX = "change-me"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


class SecuritySettings(BaseSettings):
    """Names are the env variable names, as for every setting."""

    # Access control
    # `keys` (the default): every data route needs `Authorization: Bearer <key>`, a key
    # from API_KEYS or an active one stored in Postgres (`python -m admin.keys`). With no key
    # at all, every data route answers 401 and /readyz says why. `open`: no key is asked
    # for; only `make run` sets it, for a stack bound to 127.0.0.1. Keys never switch it.
    auth_mode: Literal["keys", "open"] = "keys"
    # `<key>:<project>,<project>;<key>:*` (see core/access.py).
    api_keys: SecretStr | None = None
    # Signs WebSocket tokens. Every API process must share it, since a token minted by one
    # is checked by whichever process the socket reaches: required with keys.
    ws_token_secret: SecretStr | None = None
    ws_token_ttl_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    # How often an open WebSocket checks that its key is still active; a revoked or
    # expired key's sockets close within about this long.
    ws_key_check_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    # Comma-separated origins (`https://app.example.com`) allowed to open a WebSocket, or
    # `*`. Empty: only pages served from the API's own host. Clients that send no Origin
    # (not browsers) are not checked here; they need a token like everyone else.
    ws_allowed_origins: str = ""
    # Comma-separated host names the API answers to (the Host header, port ignored), or
    # `*`. Empty: the loopback names in open mode (against DNS rebinding), any in keys mode.
    allowed_hosts: str = ""
    # Uploads (POST /upload_image and POST /images/) per key per minute, counted in
    # Postgres so that every API process shares one budget; 0 turns the limit off.
    upload_rate_limit_per_minute: Annotated[int, Field(ge=0)] = 0
    # Preset changes, reprocess and retry requests, webhook changes: each starts or steers
    # workflows, so a key gets a budget of them (0: off).
    control_rate_limit_per_minute: Annotated[int, Field(ge=0)] = 60
    # Direct uploads one key may stream at once, per API process; 0 turns the cap off.
    upload_concurrency_per_key: Annotated[int, Field(ge=0)] = 8

    # Request bodies
    # JSON bodies (POST /images/ and any other route but the direct upload).
    json_body_max_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16 * 1024
    # A direct upload must finish within this time, and after the grace period keep up at
    # least this average rate; a slower one is refused with 408 (slow-loris).
    upload_deadline_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 900.0
    upload_min_bytes_per_second: Annotated[int, Field(ge=0)] = 64 * 1024
    upload_rate_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = 10.0

    @field_validator("api_keys", "ws_token_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        # `WS_TOKEN_SECRET=` in an env file means "not set", not an empty secret.
        return None if value == "" else value

    @field_validator("api_keys")
    @classmethod
    def _parseable_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        keys = parse_api_keys(value.get_secret_value())  # its errors never contain a key
        for position, key in enumerate(keys, start=1):
            if key.secret.get_secret_value().lower().startswith(PLACEHOLDER_PREFIX):
                raise ValueError(f"API_KEYS key {position} is still the placeholder")
        return value

    @field_validator("ws_token_secret")
    @classmethod
    def _real_ws_token_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        secret = value.get_secret_value()
        if secret.lower().startswith(PLACEHOLDER_PREFIX):
            raise ValueError("WS_TOKEN_SECRET is still the placeholder from .env.example")
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"WS_TOKEN_SECRET must be at least {MIN_SECRET_CHARS} characters")
        return value

    @model_validator(mode="after")
    def _ws_secret_with_keys(self) -> Self:
        if self.configured_api_keys and self.ws_token_secret is None:
            raise ValueError("WS_TOKEN_SECRET is required when API_KEYS is set")
        if self.auth_mode == "open" and self.api_keys is not None:
            raise ValueError("API_KEYS is set but AUTH_MODE=open would ignore it")
        return self

    @property
    def configured_api_keys(self) -> tuple[ConfiguredKey, ...]:
        return parse_api_keys(self.api_keys.get_secret_value()) if self.api_keys else ()

    @property
    def host_allowlist(self) -> frozenset[str] | None:
        """Lower-case host names the API answers to; None: any host."""
        names = {name.strip().lower() for name in self.allowed_hosts.split(",") if name.strip()}
        if "*" in names:
            return None
        if not names:
            return frozenset(LOOPBACK_HOSTS) if self.auth_mode == "open" else None
        return frozenset(names)

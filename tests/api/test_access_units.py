"""Key parsing, WebSocket tokens and the Origin rule, without any service."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from api.access.auth import OPEN, AccessControl, Principal
from api.access.ws_admission import KEY_REVOKED, ws_admission
from api.access.ws_tokens import InvalidWsTokenError, WsTokenSigner
from core.access import parse_api_keys
from core.settings import Settings

KEY_A = "a" * 40
KEY_B = "b-" * 20
SECRET = SecretStr("s" * 32)


def test_api_keys_parse_projects_and_all() -> None:
    first, second = parse_api_keys(f" {KEY_A}:42,43 ; {KEY_B}:* ;")
    assert (first.secret.get_secret_value(), first.projects) == (KEY_A, frozenset({42, 43}))
    assert (second.secret.get_secret_value(), second.projects) == (KEY_B, None)


@pytest.mark.parametrize(
    "text",
    [
        f"{KEY_A}",  # no scope
        f"{KEY_A}:",  # empty scope
        f"{KEY_A}:0",
        f"{KEY_A}:seven",
        f"{KEY_A}:1,,2",
        "short:1",
        f"{KEY_A}:1;{KEY_A}:2",  # the same key twice
    ],
)
def test_malformed_api_keys_are_refused_without_echoing_the_key(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_api_keys(text)
    assert KEY_A not in str(caught.value)


def test_settings_require_a_ws_secret_with_keys_and_hide_both() -> None:
    with pytest.raises(ValidationError, match="WS_TOKEN_SECRET is required"):
        Settings.model_validate({"api_keys": f"{KEY_A}:1"})
    with pytest.raises(ValidationError, match="at least 32"):
        Settings.model_validate({"api_keys": f"{KEY_A}:1", "ws_token_secret": "short"})
    settings = Settings.model_validate({"api_keys": f"{KEY_A}:1", "ws_token_secret": SECRET})
    assert KEY_A not in repr(settings)
    assert "s" * 32 not in repr(settings)
    assert settings.configured_api_keys[0].projects == frozenset({1})


def test_a_token_verifies_for_its_project_until_it_expires() -> None:
    signer = WsTokenSigner(SECRET, ttl_seconds=60)
    token, expires_at = signer.issue(7, "key-1", now=1_000_000)
    assert expires_at.timestamp() == 1_000_060
    parsed = signer.verify(token, 7, now=1_000_059)
    assert (parsed.project_id, parsed.key_id) == (7, "key-1")
    with pytest.raises(InvalidWsTokenError, match="expired"):
        signer.verify(token, 7, now=1_000_060)
    with pytest.raises(InvalidWsTokenError, match="another project"):
        signer.verify(token, 8, now=1_000_000)


def test_forged_or_malformed_tokens_are_refused() -> None:
    signer = WsTokenSigner(SECRET, ttl_seconds=60)
    token, _ = signer.issue(7, "key-1")
    other, _ = WsTokenSigner(SecretStr("t" * 32), ttl_seconds=60).issue(7, "key-1")
    version, payload, signature = token.split(".")
    forged_payload = f"{version}.{payload[:-2]}xx.{signature}"
    for bad in (other, forged_payload, f"v2.{payload}.{signature}", "", "v1..", "v1.é.é", "x"):
        with pytest.raises(InvalidWsTokenError):
            signer.verify(bad, 7)


def test_principal_scope() -> None:
    scoped = Principal("k", frozenset({1, 2}))
    assert scoped.can_use(1) and not scoped.can_use(3) and not scoped.all_projects
    assert OPEN.can_use(3) and OPEN.all_projects


def access(origins: str) -> AccessControl:
    return AccessControl.from_settings(Settings.model_validate({"ws_allowed_origins": origins}))


def test_origin_defaults_to_the_api_host_only() -> None:
    same_host = access("")
    assert same_host.origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not same_host.origin_allowed("http://evil.example", "127.0.0.1:8000")
    assert not same_host.origin_allowed("null", "127.0.0.1:8000")
    assert same_host.origin_allowed(None, "127.0.0.1:8000")  # not a browser


def test_origin_allowlist_and_wildcard() -> None:
    listed = access("https://app.example.com/, http://localhost:3000")
    assert listed.origin_allowed("https://APP.example.com", "api.example.com")
    assert listed.origin_allowed("http://localhost:3000", "api.example.com")
    assert not listed.origin_allowed("https://api.example.com", "api.example.com")
    assert access("*").origin_allowed("http://anything.example", "api.example.com")


def keyed(api_keys: str) -> AccessControl:
    return AccessControl.from_settings(
        Settings.model_validate({"api_keys": api_keys, "ws_token_secret": SECRET})
    )


def test_a_token_opens_nothing_once_its_key_left_api_keys_or_lost_the_project() -> None:
    """Another process (or this one after a restart) with a changed API_KEYS: tokens
    minted for a removed key, or for a project the key no longer has, are refused."""
    minting = keyed(f"{KEY_A}:1,2")
    key_id = minting.authenticate(None, KEY_A).key_id  # type: ignore[arg-type]
    assert key_id is not None and minting.ws_tokens is not None
    token, _ = minting.ws_tokens.issue(1, key_id)
    sessions = None  # configured keys are checked without Postgres

    def admitted(access: AccessControl) -> bool:
        admission = ws_admission(access, sessions, {}, 1, token)  # type: ignore[arg-type]
        assert admission.refusal in (None, KEY_REVOKED)
        return admission.refusal is None

    assert admitted(minting)
    assert not admitted(keyed(f"{KEY_B}:1"))  # the key was removed
    assert not admitted(keyed(f"{KEY_A}:2"))  # the key lost project 1
    assert admitted(keyed(f"{KEY_A}:1;{KEY_B}:3"))

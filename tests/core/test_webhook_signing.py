"""Standard Webhooks signatures and the SSRF address rules, as pure functions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.webhooks.addresses import (
    AddressRefusedError,
    Target,
    UrlRefusedError,
    check_literal,
    is_public,
    parse_url,
    resolve,
)
from core.webhooks.contracts import delivery_id_for, delivery_workflow_id_for
from core.webhooks.signing import (
    SignatureError,
    new_secret,
    signed_headers,
    still_signing,
    verify,
)
from tests.conftest import REPO_ROOT

BODY = b'{"type":"image.done"}'


def test_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", BODY, now=1_700_000_000)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, b"msg_1.1700000000." + BODY, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
    verify(secret, headers, BODY, now=1_700_000_100)


def test_verify_refuses_tampering_old_timestamps_and_other_secrets() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", BODY, now=1_700_000_000)
    with pytest.raises(SignatureError):
        verify(secret, headers, BODY + b" ", now=1_700_000_000)
    with pytest.raises(SignatureError):
        verify(secret, headers, BODY, now=1_700_000_000 + 301)
    with pytest.raises(SignatureError):
        verify(new_secret(), headers, BODY, now=1_700_000_000)
    with pytest.raises(SignatureError):
        verify(secret, {"webhook-id": "msg_1"}, BODY)
    several = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    verify(secret, several, BODY, now=1_700_000_000)


def test_a_rotated_secret_in_its_overlap_adds_a_second_signature() -> None:
    current, previous = new_secret(), new_secret()
    headers = signed_headers(current, "msg_1", BODY, now=1_700_000_000, previous=previous)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(current, headers, BODY, now=1_700_000_000)  # a receiver that switched
    verify(previous, headers, BODY, now=1_700_000_000)  # and one that has not yet
    with pytest.raises(SignatureError):
        verify(new_secret(), headers, BODY, now=1_700_000_000)


def test_a_rotated_secret_signs_only_until_it_expires() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert still_signing(now + timedelta(seconds=1), now)
    assert not still_signing(now, now)
    assert not still_signing(None, now)


def test_delivery_ids_are_deterministic() -> None:
    first = delivery_id_for("e", "i", "run", "image.done")
    assert first == delivery_id_for("e", "i", "run", "image.done")
    assert first != delivery_id_for("e", "i", "run2", "image.done")
    assert first != delivery_id_for("e", "i", "run", "image.error")
    assert len(first) == 44 and first.startswith("msg_")
    assert delivery_workflow_id_for(first) == f"webhook-{first}"
    assert delivery_workflow_id_for(first, 2) == f"webhook-{first}-r2"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "64:ff9b:1::a00:1",  # local-use NAT64
        "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "fec0::1",  # site-local
        "2002:a00:1::",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(AddressRefusedError):
        check_literal(address, allow_private=False)
    check_literal(address, allow_private=True)


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_names_resolving_to_loopback_are_refused() -> None:
    target = Target("https", "localhost", 443, "/")
    with pytest.raises(AddressRefusedError):
        resolve(target, allow_private=False)
    assert not is_public(resolve(target, allow_private=True))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/h",
        "ftp://example.com/h",
        "https://user:pw@example.com/h",
        "https:///h",
        "https://example.com:99999/h",
        "https://example.com/h#frag",
        "https://example.com/" + "a" * 2100,
        # Control characters: NUL, and those urlsplit would strip silently.
        "https://example.com/a\x00b",
        "https://exam\tple.com/h",
        "https://example.com/h\r\nX-Injected: 1",
        "https://example.com/\x1f",
        "https://example.com/\x7f",
        "https://example.com:0/h",
        "https://ex..ample.com/h",  # no empty label in DNS
        "https://" + "a" * 64 + ".example.com/h",  # nor one over 63 characters
    ],
)
def test_urls_refused(url: str) -> None:
    with pytest.raises(UrlRefusedError):
        parse_url(url, allow_http=False)


def test_url_parts() -> None:
    assert parse_url("https://example.com/h?x=1", False) == Target(
        "https", "example.com", 443, "/h?x=1"
    )
    assert parse_url("http://[::1]:8080", True) == Target("http", "::1", 8080, "/")
    # DNS, the Host header and SNI take the IDNA form of an international name.
    assert parse_url("https://Bücher.example/h", False).host == "xn--bcher-kva.example"


def test_the_receiver_code_in_the_docs_verifies_our_signatures() -> None:
    text = (REPO_ROOT / "docs" / "webhooks.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    receiver_verify = namespace["verify_webhook"]
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", BODY)
    assert receiver_verify(secret, headers, BODY)
    assert not receiver_verify(secret, headers, BODY + b" ")
    assert not receiver_verify(new_secret(), headers, BODY)
    stale = signed_headers(secret, "msg_1", BODY, now=time.time() - 301)
    assert not receiver_verify(secret, stale, BODY)

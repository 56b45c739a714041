"""SSRF defence: which receiver URLs are allowed, and which addresses may be connected to.

The API checks a URL's shape when an endpoint is created; the delivery activity checks it
again, resolves the host once at delivery time, vets every address it resolves to, and
connects to the vetted one (no second lookup a rebinding DNS server could answer
differently).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_CHARS = 2048
# Spelled out although `is_global` covers most: these are the ones attackers aim for.
_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",  # CGNAT
        "169.254.169.254/32",  # cloud metadata
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "64:ff9b::/96",  # NAT64: may embed a private IPv4 address
        "64:ff9b:1::/48",  # local-use NAT64: likewise (not in every Python's tables)
        "::ffff:0:0:0/96",  # IPv4-translated: likewise
        "::/96",  # IPv4-compatible (deprecated): likewise
        "2002::/16",  # 6to4: likewise
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
    )
)


class UrlRefusedError(ValueError):
    """The URL itself is not allowed (scheme, credentials, shape)."""


class AddressRefusedError(ValueError):
    """The host is, or resolves to, an address deliveries may not reach."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    # Path and query, as sent in the request line.
    path: str


def parse_url(url: str, allow_http: bool) -> Target:
    if len(url) > MAX_URL_CHARS:
        raise UrlRefusedError(f"the URL is longer than {MAX_URL_CHARS} characters")
    # urlsplit strips TAB, CR and LF silently, so the URL stored would not be the one
    # checked; Postgres refuses NUL in text outright (a 503, not our 422).
    if any(_is_control(char) for char in url):
        raise UrlRefusedError("the URL may not contain control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UrlRefusedError("the URL cannot be parsed") from error
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UrlRefusedError(f"the URL must use {' or '.join(allowed)}")
    if not parts.hostname:
        raise UrlRefusedError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefusedError("the URL may not carry credentials")
    if parts.fragment:
        raise UrlRefusedError("the URL may not carry a fragment")
    if port == 0:
        raise UrlRefusedError("the URL's port must be 1 to 65535")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, _ascii_host(parts.hostname), port or default_port, path)


def _ascii_host(host: str) -> str:
    """The host as DNS, the Host header and SNI take it: IDNA for a name with non-ASCII
    letters; a name DNS cannot hold (an empty or over-long label) is refused here, not
    retried for days at delivery."""
    if literal_address(host) is not None:
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise UrlRefusedError("the URL's host is not a valid domain name") from error


def _is_control(char: str) -> bool:
    return char < "\x20" or char == "\x7f"


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _ALWAYS_REFUSED):
        return False
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_literal(host: str, allow_private: bool) -> None:
    """At creation: refuse an IP literal that could never be delivered to."""
    address = literal_address(host)
    if address is not None and not allow_private and not is_public(address):
        raise AddressRefusedError("the URL's address is not a public one")


def resolve(target: Target, allow_private: bool) -> IPAddress:
    """The address to connect to; AddressRefusedError if any candidate is not public.

    Refusing the whole name (not only its private answers) keeps a host that mixes public
    and private records from being reached through the private one.
    """
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ConnectionError(f"cannot resolve {target.host}") from error
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise ConnectionError(f"{target.host} has no address")
    if not allow_private and not all(is_public(address) for address in addresses):
        raise AddressRefusedError(f"{target.host} resolves to a non-public address")
    return addresses[0]

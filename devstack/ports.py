"""Loopback port helpers."""

from __future__ import annotations

import socket
import time
from collections.abc import Collection
from contextlib import ExitStack

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int, exclude: Collection[int] = ()) -> list[int]:
    """`count` distinct free ports on 127.0.0.1, none of them in `exclude`.

    All probe sockets stay bound until every port is picked, so the kernel cannot hand out
    the same port twice within one call; `exclude` covers ports picked by earlier calls
    that are not bound yet.
    """
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((LOOPBACK, 0))
            port: int = probe.getsockname()[1]
            if port not in exclude:
                ports.append(port)
        return ports


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until host:port accepts connections; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not port_is_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")
        time.sleep(0.1)

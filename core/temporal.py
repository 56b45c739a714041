"""The Temporal client, one per process, built by the entry points.

Locally the client talks plain gRPC to the dev server. For a remote cluster or Temporal
Cloud the settings add TLS (system CAs, or TEMPORAL_TLS_CA_PATH), a client certificate
for mTLS, or an API key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from core.settings import Settings


class ConnectOptions(TypedDict):
    """The keyword arguments of `Client.connect` that come from the settings."""

    namespace: str
    tls: bool | TLSConfig
    api_key: str | None


def tls_config(settings: Settings) -> bool | TLSConfig:
    """False for plain gRPC, True for TLS with the system CAs, else a full TLSConfig."""
    if not settings.temporal_tls_enabled:
        return False
    ca_path = settings.temporal_tls_ca_path
    cert_path = settings.temporal_tls_cert_path
    key_path = settings.temporal_tls_key_path
    if ca_path is None and cert_path is None:
        return True
    # Read at connect time, not when settings are built: rotated certificates are picked
    # up by a restart, and settings stay cheap to construct in tests.
    return TLSConfig(
        server_root_ca_cert=_read(ca_path),
        client_cert=_read(cert_path),
        client_private_key=_read(key_path),
    )


def connect_options(settings: Settings) -> ConnectOptions:
    api_key = settings.temporal_api_key
    return ConnectOptions(
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key is not None else None,
    )


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """`runtime`: the worker's, when it exports SDK metrics; None is the SDK's default."""
    return await Client.connect(
        settings.temporal_address, **connect_options(settings), lazy=lazy, runtime=runtime
    )


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None

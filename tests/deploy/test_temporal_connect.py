"""Settings for a remote Temporal cluster or Temporal Cloud, and what they pass to connect."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.service import TLSConfig

from core.settings import Settings
from core.temporal import connect_options, tls_config


def make_settings(**values: object) -> Settings:
    # model_validate reads no environment or .env file, so the developer's own cannot leak in.
    return Settings.model_validate(values)


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca")}
    for name, path in files.items():
        path.write_bytes(f"-----{name}-----".encode())
    return files


def test_local_default_is_plain_grpc() -> None:
    options = connect_options(make_settings())
    assert options == {"namespace": "default", "tls": False, "api_key": None}


def test_tls_alone_uses_system_cas() -> None:
    assert tls_config(make_settings(temporal_tls=True)) is True


def test_api_key_implies_tls_and_is_passed() -> None:
    settings = make_settings(temporal_api_key="secret-key", temporal_namespace="ns.acct")
    options = connect_options(settings)
    assert options == {"namespace": "ns.acct", "tls": True, "api_key": "secret-key"}
    assert "secret-key" not in repr(settings)


def test_client_certificate_builds_mtls_config(pem_files: dict[str, Path]) -> None:
    settings = make_settings(
        temporal_tls_cert_path=pem_files["cert"], temporal_tls_key_path=pem_files["key"]
    )
    tls = tls_config(settings)
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----cert-----"
    assert tls.client_private_key == b"-----key-----"
    assert tls.server_root_ca_cert is None


def test_server_ca_alone_builds_config(pem_files: dict[str, Path]) -> None:
    tls = tls_config(make_settings(temporal_tls_ca_path=pem_files["ca"]))
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == b"-----ca-----"
    assert tls.client_cert is None


@pytest.mark.parametrize("present", ["cert", "key"])
def test_certificate_and_key_come_together(pem_files: dict[str, Path], present: str) -> None:
    with pytest.raises(ValidationError, match="must be set together"):
        make_settings(**{f"temporal_tls_{present}_path": pem_files[present]})


@pytest.mark.parametrize("field", ["cert", "key", "ca"])
def test_missing_file_is_refused(pem_files: dict[str, Path], tmp_path: Path, field: str) -> None:
    values: dict[str, object] = {
        "temporal_tls_cert_path": pem_files["cert"],
        "temporal_tls_key_path": pem_files["key"],
        f"temporal_tls_{field}_path": tmp_path / "missing.pem",
    }
    with pytest.raises(ValidationError, match=f"temporal_tls_{field}_path"):
        make_settings(**values)


def test_empty_values_mean_unset() -> None:
    settings = make_settings(
        temporal_tls_cert_path="",
        temporal_tls_key_path="",
        temporal_tls_ca_path="",
        temporal_api_key="",
    )
    assert settings.temporal_tls_enabled is False
    assert connect_options(settings)["api_key"] is None


def test_read_from_environment(monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CA_PATH", str(pem_files["ca"]))
    monkeypatch.setenv("TEMPORAL_API_KEY", "from-env")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.temporal_tls_ca_path == pem_files["ca"]
    assert connect_options(settings)["api_key"] == "from-env"

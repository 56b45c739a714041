"""docker-compose.yml, checked without Docker: the compose-spec schema, then the rules that
make the stack start in order, scale, stop gracefully and stay on loopback."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from core.settings import Settings
from tests.deploy.files import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO_ROOT,
    compose_services,
    duration_seconds,
    raw_compose,
    read_env_file,
    variables_used,
)

SCHEMA_FILE = Path(__file__).parent / "schema" / "compose-spec.json"
APP_SERVICES = ("api", "worker", "migrations")
# Settings other engineers add in parallel (observability, auth, websocket, rate limits).
ALLOWED_EXTRA_ENV = {
    "LOG_FORMAT",
    "WORKER_METRICS_PORT",
    "API_KEYS",
    "WS_ALLOWED_ORIGINS",
    "UPLOAD_RATE_LIMIT_PER_MINUTE",
}
WAIT_CONDITIONS = {"service_healthy", "service_completed_successfully"}

Services = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def services() -> Services:
    return compose_services()


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    # The file names draft 2019-09 by a URL jsonschema does not recognise; name it here.
    validator = jsonschema.Draft201909Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def dependencies(service: dict[str, Any]) -> dict[str, Any]:
    depends_on = service.get("depends_on", {})
    # The short list form has no condition; the assertions below reject it by name.
    return depends_on if isinstance(depends_on, dict) else dict.fromkeys(depends_on)


def one_shot_jobs(services: Services) -> set[str]:
    """Services something waits on to complete: migrations, schema and bucket setup."""
    return {
        name
        for service in services.values()
        for name, options in dependencies(service).items()
        if options and options.get("condition") == "service_completed_successfully"
    }


def test_matches_the_compose_spec_schema() -> None:
    assert schema_errors(raw_compose()) == []


def test_the_schema_catches_mistakes() -> None:
    broken = raw_compose()
    broken["services"]["api"]["depends_on"]["migrations"] = {"condition": "sleep_10"}
    broken["services"]["worker"]["stop_grace_perod"] = "45s"
    errors = schema_errors(broken)
    assert any("sleep_10" in error for error in errors)
    assert any("stop_grace_perod" in error for error in errors)


def test_every_dependency_waits_on_a_condition(services: Services) -> None:
    for name, service in services.items():
        for dependency, options in dependencies(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = (options or {}).get("condition")
            assert condition in WAIT_CONDITIONS, f"{name} -> {dependency}: {condition}"


def test_long_running_dependencies_are_healthchecked(services: Services) -> None:
    jobs = one_shot_jobs(services)
    for name, service in services.items():
        for dependency, options in dependencies(service).items():
            if dependency in jobs:
                continue
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            assert options["condition"] == "service_healthy", f"{name} -> {dependency}"


def test_one_shot_jobs_are_not_restarted(services: Services) -> None:
    jobs = one_shot_jobs(services)
    assert {"migrations", "minio-setup", "temporal-schema", "temporal-setup"} <= jobs
    for job in jobs:
        assert services[job].get("restart", "no") == "no", job
        assert "healthcheck" not in services[job], job


def test_worker_scales_and_stops_gracefully(services: Services) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    # A published host port would collide between replicas.
    assert "ports" not in worker
    grace = float(worker["environment"]["WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
    stop_grace = duration_seconds(worker["stop_grace_period"])
    assert stop_grace > grace
    assert stop_grace > Settings.model_fields["worker_graceful_shutdown_seconds"].default


def test_api_healthcheck_uses_readyz(services: Services) -> None:
    test = " ".join(services["api"]["healthcheck"]["test"])
    assert "/readyz" in test


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_environment_names_are_settings(services: Services, service: str) -> None:
    known = {field.upper() for field in Settings.model_fields} | ALLOWED_EXTRA_ENV
    environment = services[service]["environment"]
    assert isinstance(environment, dict), "use the mapping form so names can be checked"
    assert set(environment) - known == set()


def test_app_environment_builds_valid_settings(services: Services) -> None:
    """With every placeholder of .env.example replaced, as the file's header asks."""
    real = {
        name: secrets.token_urlsafe(32) + (":*" if name == "API_KEYS" else "")
        for name, value in read_env_file().items()
        if value.startswith("change-me")
    }
    services = compose_services(real)
    for service in APP_SERVICES:
        environment = services[service]["environment"]
        settings = Settings.model_validate(
            {key.lower(): value for key, value in environment.items()}
        )
        assert settings.database_url.startswith("postgresql+psycopg://"), service
    assert (
        Settings.model_validate(
            {key.lower(): value for key, value in services["api"]["environment"].items()}
        ).auth_mode
        == "keys"
    )


def test_the_env_example_placeholders_are_refused_by_name_only(services: Services) -> None:
    """Copied unchanged, .env.example does not start an api: it must be edited first."""
    environment = services["api"]["environment"]
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({key.lower(): value for key, value in environment.items()})
    text = str(refused.value)
    assert "WS_TOKEN_SECRET" in text and "API_KEYS" in text
    assert environment["WS_TOKEN_SECRET"] not in text
    assert environment["API_KEYS"].split(":")[0] not in text


def test_app_services_share_one_image(services: Services) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    assert all(services[name]["build"] == "." for name in APP_SERVICES)
    assert services["worker"]["command"] == ["python", "worker.py"]
    assert services["migrations"]["command"] == ["python", "-m", "alembic", "upgrade", "head"]


def test_temporal_runs_the_server_image_not_auto_setup(services: Services) -> None:
    images = [service["image"] for service in services.values()]
    assert not [image for image in images if "auto-setup" in image]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert "AUTO_SETUP" not in services["temporal"]["environment"]


def mounted_scripts(service: dict[str, Any]) -> str:
    sources = [volume.split(":")[0] for volume in service.get("volumes", [])]
    return "\n".join((REPO_ROOT / source).read_text() for source in sources)


def test_schema_job_uses_temporal_sql_tool(services: Services) -> None:
    script = mounted_scripts(services["temporal-schema"])
    assert "temporal-sql-tool" in script
    assert "update-schema" in script


def test_setup_job_creates_namespace_and_project_id(services: Services) -> None:
    script = mounted_scripts(services["temporal-setup"])
    assert "namespace create" in script and "--retention" in script
    assert "--name ProjectId --type Keyword" in script
    assert services["temporal-setup"]["environment"]["TEMPORAL_RETENTION"]


def test_dynamic_config_is_mounted(services: Services) -> None:
    temporal = services["temporal"]
    target_dir = "/etc/temporal/config/dynamicconfig"
    mounts = dict(volume.split(":")[:2] for volume in temporal["volumes"])
    source = {target: source for source, target in mounts.items()}[target_dir]
    config_path = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert config_path.startswith(target_dir + "/")
    config = yaml.safe_load((REPO_ROOT / source / Path(config_path).name).read_text())
    # Every key is a list of constrained values, as the server's file client expects.
    for key, values in config.items():
        assert isinstance(values, list) and all("value" in item for item in values), key


def published_ports(services: Services) -> list[tuple[str, Any]]:
    return [(name, port) for name, service in services.items() for port in service.get("ports", [])]


def test_published_ports_are_loopback_only(services: Services) -> None:
    assert published_ports(services)
    for name, port in published_ports(services):
        host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
        assert host_ip == "127.0.0.1", f"{name}: {port}"


def test_images_are_pinned(services: Services) -> None:
    for name, service in services.items():
        image = service["image"]
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: {image}"


def test_env_example_defines_every_variable() -> None:
    defined = set(read_env_file())
    used = variables_used(COMPOSE_FILE.read_text())
    assert used - defined == set(), f"add to {ENV_EXAMPLE.name}"

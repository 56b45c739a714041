"""docker-compose.yml's privileges, checked as data: the app's Postgres role is neither a
superuser nor Temporal's, the app's MinIO user may only use its bucket's objects, Temporal's
frontend is published nowhere, and the api gets its WebSocket secret and keys mode."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.deploy.files import REPO_ROOT, compose_services, read_env_file

Services = dict[str, dict[str, Any]]
OBJECT_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}
# Listing: /readyz (HeadBucket) and the staging cleanup (objects, unfinished uploads).
BUCKET_ACTIONS = {"s3:ListBucket", "s3:ListBucketMultipartUploads"}


@pytest.fixture(scope="module")
def services() -> Services:
    return compose_services()


def init_script(services: Services) -> str:
    mounts = dict(volume.split(":")[:2] for volume in services["postgres"]["volumes"])
    source = {target: source for source, target in mounts.items()}["/docker-entrypoint-initdb.d"]
    return "\n".join(path.read_text() for path in sorted((REPO_ROOT / source).glob("*.sh")))


def test_the_app_and_temporal_have_postgres_roles_of_their_own(services: Services) -> None:
    superuser = services["postgres"]["environment"]["POSTGRES_USER"]
    app_user = make_url(services["api"]["environment"]["DATABASE_URL"]).username
    temporal_user = services["temporal"]["environment"]["POSTGRES_USER"]
    assert services["temporal-schema"]["environment"]["POSTGRES_USER"] == temporal_user
    assert len({superuser, app_user, temporal_user}) == 3
    for service in ("api", "worker", "migrations"):
        assert make_url(services[service]["environment"]["DATABASE_URL"]).username == app_user
    postgres_env = services["postgres"]["environment"]
    assert (postgres_env["IMGPROC_DB_USER"], postgres_env["TEMPORAL_DB_USER"]) == (
        app_user,
        temporal_user,
    )
    # Each password is its own, and never the superuser's.
    passwords = {
        postgres_env["POSTGRES_PASSWORD"],
        make_url(services["api"]["environment"]["DATABASE_URL"]).password,
        services["temporal"]["environment"]["POSTGRES_PWD"],
    }
    assert len(passwords) == 3


def test_the_init_script_creates_both_roles_without_privileges(services: Services) -> None:
    script = init_script(services)
    roles = re.findall(r"CREATE ROLE :\"(\w+)\"([^;]*);", script)
    assert {name for name, _ in roles} == {"app_user", "temporal_user"}
    for _, options in roles:
        for denied in ("NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION"):
            assert denied in options
    assert 'ALTER DATABASE :"app_db" OWNER TO :"app_user"' in script
    for database in ("temporal", "temporal_visibility"):
        assert f'CREATE DATABASE {database} OWNER :"temporal_user"' in script
        assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC" in script
    assert 'REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC' in script


def app_policy(services: Services) -> dict[str, Any]:
    command = "\n".join(services["minio-setup"]["command"])
    text = command.split("<<POLICY", 1)[1].split("POLICY", 1)[0]
    bucket = services["minio-setup"]["environment"]["S3_BUCKET"]
    policy: dict[str, Any] = json.loads(text.replace("$S3_BUCKET", bucket))
    return policy


def test_the_app_may_only_use_its_buckets_objects(services: Services) -> None:
    bucket = services["minio-setup"]["environment"]["S3_BUCKET"]
    statements = app_policy(services)["Statement"]
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            granted.setdefault(resource, set()).update(statement["Action"])
    assert granted == {
        f"arn:aws:s3:::{bucket}": BUCKET_ACTIONS,
        f"arn:aws:s3:::{bucket}/*": OBJECT_ACTIONS,
    }
    assert "imgproc-objects" in " ".join(services["minio-setup"]["command"])


def test_the_temporal_frontend_is_not_published(services: Services) -> None:
    assert "ports" not in services["temporal"]
    assert "TEMPORAL_PORT" not in read_env_file()
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"api", "minio", "temporal-ui"}


def test_the_api_runs_with_keys_and_a_ws_token_secret(services: Services) -> None:
    api = services["api"]["environment"]
    assert api["AUTH_MODE"] == "keys"
    assert "WS_TOKEN_SECRET" in api and "WS_TOKEN_SECRET" in read_env_file()
    # The secret is the api's alone: workers and migrations never see it.
    for service in ("worker", "migrations"):
        assert "WS_TOKEN_SECRET" not in services[service]["environment"]

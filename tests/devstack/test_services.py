"""The embedded services really run, enforce what they should, and keep data across restarts."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client
from sqlalchemy import create_engine, text

from devstack.ports import LOOPBACK
from devstack.processes import find_binary
from devstack.seaweed import make_s3_client
from devstack.stack import LocalStack
from devstack.temporal import custom_search_attributes, ensure_search_attribute
from tests.devstack.netinfo import listening_addresses

BUCKET = "images"


def _scalar(database_url: str, query: str) -> object:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar_one()
    finally:
        engine.dispose()


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code"))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@pytest.fixture(scope="module")
def s3(local_stack: LocalStack) -> S3Client:
    local_stack.ensure_bucket()
    assert local_stack.s3 is not None
    return local_stack.s3.client()


def test_env_names_every_setting(local_stack: LocalStack) -> None:
    env = local_stack.env()
    assert set(env) == {
        "DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "S3_ENDPOINT_URL",
        "S3_PUBLIC_ENDPOINT_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET",
        "S3_REGION",
    }  # fmt: skip
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://postgres@/devstack?host=")
    assert env["TEMPORAL_ADDRESS"].startswith(f"{LOOPBACK}:")
    assert env["S3_ENDPOINT_URL"].startswith(f"http://{LOOPBACK}:")


def test_postgres_answers_select_one(local_stack: LocalStack) -> None:
    assert _scalar(local_stack.env()["DATABASE_URL"], "SELECT 1") == 1


def test_create_database_is_idempotent_and_isolated(local_stack: LocalStack) -> None:
    assert local_stack.postgres is not None
    name = f"isolated_{uuid.uuid4().hex[:8]}"
    url = local_stack.postgres.create_database(name)
    assert local_stack.postgres.create_database(name) == url
    assert _scalar(url, "SELECT current_database()") == name


def test_services_listen_on_loopback_only(local_stack: LocalStack) -> None:
    assert local_stack.postgres and local_stack.temporal and local_stack.s3
    postmaster = local_stack.postgres.data_dir / "postmaster.pid"
    assert listening_addresses(int(postmaster.read_text().split()[0])) == set()
    for process in (local_stack.temporal.process, local_stack.s3.process):
        addresses = listening_addresses(process.pid)
        assert addresses, f"{process.name} listens on nothing"
        assert {host for host, _ in addresses} == {LOOPBACK}, process.name


def test_temporal_has_project_id_search_attribute(local_stack: LocalStack) -> None:
    address = local_stack.env()["TEMPORAL_ADDRESS"]
    listing = subprocess.run(
        [str(find_binary("temporal")), "operator", "search-attribute", "list",
         "--address", address, "--namespace", "default"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "ProjectId" in listing.stdout


def test_ensure_search_attribute_registers_once(local_stack: LocalStack) -> None:
    address = local_stack.env()["TEMPORAL_ADDRESS"]
    for _ in range(2):
        ensure_search_attribute(address, "default", "DevstackProbe", "Keyword")
    attributes = custom_search_attributes(address, "default")
    assert attributes["DevstackProbe"] == "INDEXED_VALUE_TYPE_KEYWORD"


def test_signed_put_and_get(s3: S3Client) -> None:
    s3.put_object(Bucket=BUCKET, Key="signed.txt", Body=b"hello")
    assert s3.get_object(Bucket=BUCKET, Key="signed.txt")["Body"].read() == b"hello"


def test_anonymous_requests_are_refused(local_stack: LocalStack, s3: S3Client) -> None:
    s3.put_object(Bucket=BUCKET, Key="private.txt", Body=b"secret")
    anonymous = boto3.client(
        "s3",
        endpoint_url=local_stack.env()["S3_ENDPOINT_URL"],
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}),
    )
    with pytest.raises(ClientError) as put_refused:
        anonymous.put_object(Bucket=BUCKET, Key="anonymous.txt", Body=b"x")
    assert _status(put_refused.value) == 403
    with pytest.raises(ClientError) as get_refused:
        anonymous.get_object(Bucket=BUCKET, Key="private.txt")
    assert _status(get_refused.value) == 403


def test_wrong_secret_is_refused(local_stack: LocalStack) -> None:
    env = local_stack.env()
    forged = make_s3_client(env["S3_ENDPOINT_URL"], env["S3_ACCESS_KEY_ID"], "not-the-secret")
    with pytest.raises(ClientError) as refused:
        forged.put_object(Bucket=BUCKET, Key="forged.txt", Body=b"x")
    assert _error_code(refused.value) == "SignatureDoesNotMatch" or _status(refused.value) == 403


def test_presigned_get_works_and_tampering_is_refused(s3: S3Client) -> None:
    s3.put_object(Bucket=BUCKET, Key="shared.txt", Body=b"shared")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "shared.txt"}, ExpiresIn=60
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"shared"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.replace("shared.txt", "signed.txt"), timeout=10)
    assert refused.value.code == 403


def _write_row_and_object(stack: LocalStack) -> None:
    stack.ensure_bucket()
    engine = create_engine(stack.env()["DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE kept (value text)"))
            conn.execute(text("INSERT INTO kept VALUES ('row survives')"))
    finally:
        engine.dispose()
    assert stack.s3 is not None
    stack.s3.client().put_object(Bucket=BUCKET, Key="kept.txt", Body=b"object survives")


def test_restart_on_same_base_dir_keeps_data(tmp_path: Path) -> None:
    base_dir = tmp_path / "stack"
    with LocalStack(base_dir, database="restart", environ={}) as first:
        _write_row_and_object(first)
        first_env = first.env()
    with LocalStack(base_dir, database="restart", environ={}) as second:
        env = second.env()
        assert second.s3 is not None
        client = second.s3.client()
        assert _scalar(env["DATABASE_URL"], "SELECT value FROM kept") == "row survives"
        assert client.get_object(Bucket=BUCKET, Key="kept.txt")["Body"].read() == (
            b"object survives"
        )
        # New writes must not reuse file ids of old ones after the master starts afresh.
        client.put_object(Bucket=BUCKET, Key="after.txt", Body=b"after restart")
        assert client.get_object(Bucket=BUCKET, Key="kept.txt")["Body"].read() == (
            b"object survives"
        )
        assert "ProjectId" in custom_search_attributes(env["TEMPORAL_ADDRESS"], "default")
    assert env["S3_ACCESS_KEY_ID"] == first_env["S3_ACCESS_KEY_ID"]

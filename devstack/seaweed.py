"""SeaweedFS (`weed server`) as an S3 endpoint that enforces signed requests."""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devstack.ports import LOOPBACK, free_ports
from devstack.processes import ManagedProcess, StartupError, find_binary, spawn, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

REGION = "us-east-1"


@dataclass(frozen=True)
class SeaweedPorts:
    """Every TCP port one `weed server` listens on."""

    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int


def make_s3_client(
    endpoint_url: str, access_key: str, secret_key: str, region: str = REGION
) -> S3Client:
    """A SigV4, path-style client, the way the app talks to a local S3."""
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        connect_timeout=2,
        read_timeout=10,
        retries={"max_attempts": 1},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=config,
    )


def ensure_bucket(client: S3Client, name: str) -> None:
    """Create bucket `name` unless it exists."""
    try:
        client.head_bucket(Bucket=name)
        return
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"404", "NotFound", "NoSuchBucket"}:
            raise
    try:
        client.create_bucket(Bucket=name)
        logger.info("created bucket %s", name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass  # created concurrently by another process


@dataclass
class S3Service:
    """A running SeaweedFS whose S3 gateway accepts only the configured key pair."""

    process: ManagedProcess
    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    ports: SeaweedPorts
    region: str = REGION

    def client(self) -> S3Client:
        """A new client holding this service's credentials."""
        return make_s3_client(self.endpoint_url, self.access_key, self.secret_key, self.region)

    def ensure_bucket(self, name: str) -> None:
        """Create bucket `name` unless it exists."""
        ensure_bucket(self.client(), name)

    def unix_sockets(self) -> list[Path]:
        """Files in /tmp that a killed weed leaves behind (see `unix_sockets`)."""
        return unix_sockets(self.ports)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` s: its filer alone waits 15 s for gRPC streams."""
        # Not process.stop(): the kill is the normal case here, not worth a warning.
        self.process.terminate()
        self.process.wait(grace)
        self.process.reap()
        _remove_unix_sockets(self.ports)


def start_seaweedfs(
    data_dir: Path,
    s3_port: int,
    access_key: str,
    secret_key: str,
    log_path: Path,
    timeout: float = 60.0,
) -> S3Service:
    """Start master, volume, filer and S3 gateway in one process, state in `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = _write_identities(data_dir, access_key, secret_key)
    _remove_stale_master_state(data_dir)
    ports = SeaweedPorts(s3_port, *free_ports(7, exclude={s3_port}))
    volumes_on_disk = len(list(data_dir.glob("*.dat")))
    argv = _server_argv(data_dir, config_path, ports)
    process = spawn("seaweedfs", argv, os.environ, log_path)
    service = S3Service(process, f"http://{LOOPBACK}:{s3_port}", access_key, secret_key, ports)
    client = service.client()
    try:
        wait_until(
            lambda: _is_ready(client, ports.master, volumes_on_disk), timeout, "seaweedfs", process
        )
        _require_credentials(service.endpoint_url)
    except BaseException:
        service.stop(0)
        raise
    logger.info("seaweedfs S3 ready on %s", service.endpoint_url)
    return service


def _write_identities(data_dir: Path, access_key: str, secret_key: str) -> Path:
    # Without an identities file the gateway accepts anonymous and wrongly signed requests.
    identity = {
        "name": "app",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    path = data_dir / "s3.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"identities": [identity]}, handle)
    return path


def _remove_stale_master_state(data_dir: Path) -> None:
    # The master keeps raft state in m<port>/; with -master.resumeState=false it is never read
    # again, and since the master port changes per run these would pile up.
    for child in data_dir.glob("m*"):
        if child.is_dir() and child.name[1:].isdigit():
            shutil.rmtree(child)


def _server_argv(data_dir: Path, config_path: Path, ports: SeaweedPorts) -> list[str]:
    return [
        str(find_binary("weed")),
        "-logtostderr",  # otherwise glog also writes weed.* files into /tmp
        "server",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-dir={data_dir}",
        "-s3",
        f"-s3.port={ports.s3}",
        f"-s3.config={config_path}",
        # gRPC ports default to http port + 10000, which can exceed 65535 or collide.
        f"-s3.port.grpc={ports.s3_grpc}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master_grpc}",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume_grpc}",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer_grpc}",
        # Iceberg (8181) and Lance (9101) listeners are on by default on fixed ports.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        # The default cap of 8 volumes is used up by the first bucket (7 volumes per
        # collection); 0 sizes it from free disk space instead.
        "-volume.max=0",
        # Resuming a single-node raft log delays leader election by ~20 s on restart; the
        # master rebuilds its topology from volume heartbeats anyway.
        "-master.resumeState=false",
        "-volume.preStopSeconds=0",
        # Objects under 1 MiB (every derivative but a huge PNG) are kept in the filer's
        # store instead of a volume: no file id to assign and no upload to the volume
        # server per PUT. Measured in `bench.ab` (docs/benchmarks.md): 5-6% less CPU per
        # image across the stack, 1.13x the throughput over 6 rounds.
        "-filer.saveToFilerLimit=1048576",
    ]


def _is_ready(client: S3Client, master_port: int, volumes_on_disk: int) -> bool:
    try:
        client.list_buckets()
    except (BotoCoreError, ClientError):
        return False
    # The gateway answers before the volume server has reported its volumes to the master,
    # and reads of existing objects fail with "volume not found" until it has.
    return _registered_volumes(master_port) >= volumes_on_disk


def _require_credentials(endpoint_url: str) -> None:
    # The one thing that must never silently regress: an anonymous request gets refused.
    anonymous = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    try:
        anonymous.list_buckets()
    except ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
            return
        raise
    raise StartupError(f"seaweedfs at {endpoint_url} accepts anonymous requests")


def _registered_volumes(master_port: int) -> int:
    url = f"http://{LOOPBACK}:{master_port}/dir/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: dict[str, Any] = json.load(response)
    except (OSError, ValueError):
        return -1
    topology = status.get("Topology", {})
    return sum(
        node.get("Volumes", 0)
        for center in topology.get("DataCenters") or []
        for rack in center.get("Racks") or []
        for node in rack.get("DataNodes") or []
    )


def unix_sockets(ports: SeaweedPorts) -> list[Path]:
    """The unix sockets `weed server` with these ports listens on besides its TCP ports.

    They are in /tmp (hard-coded, not $TMPDIR) and stay behind when weed is killed; their
    names carry the ports of one run, so they belong to that run.
    """
    names = {
        "s3": ports.s3, "s3-grpc": ports.s3_grpc, "filer": ports.filer,
        "filer-grpc": ports.filer_grpc, "master-grpc": ports.master_grpc,
        "volume-grpc": ports.volume_grpc,
    }  # fmt: skip
    return [Path(f"/tmp/seaweedfs-{kind}-{port}.sock") for kind, port in names.items()]


def _remove_unix_sockets(ports: SeaweedPorts) -> None:
    for path in unix_sockets(ports):
        path.unlink(missing_ok=True)

"""thumbor as a peer in the end-to-end bench, from PyPI, in a venv of its own.

`ensure_thumbor` installs `thumbor==THUMBOR_VERSION` into `.venv-thumbor` (once; about a
minute), and answers None when it cannot, so the bench says so and goes on without it.
`running_thumbor` serves a folder with the file loader, storing nothing, in 2 processes
(`--processes`, one socket); `thumbor_rate` asks it for the 4 `fit-in` sizes of each image.

Configured to make what the product makes: JPEG q85, not progressive, no EXIF, upright;
and each size again as WebP q85 when the formats include it (a request per format: thumbor
renders on the fly, one output per request).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import descendant_cpu_seconds
from bench.compute import QUALITY
from core.presets import DEFAULT_QUALITY, PRESETS
from devstack.ports import LOOPBACK, free_port
from devstack.processes import ManagedProcess, spawn, wait_until

logger = logging.getLogger("bench.thumbor")

THUMBOR_VERSION = "7.8.0"
VENV = Path(".venv-thumbor")
INSTALL_TIMEOUT_SECONDS = 600.0
READY_SECONDS = 30.0
# thumbor's URL filters for each of the product's formats (`auto` is its JPEG default).
FILTERS = {"webp": f"filters:format(webp):quality({DEFAULT_QUALITY['webp']})/"}
# Requests in flight per thumbor process: one decoding, one on the wire.
IN_FLIGHT_PER_PROCESS = 2

CONFIG = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
QUALITY = {quality}
PROGRESSIVE_JPEG = False
PRESERVE_EXIF_INFO = False
RESPECT_ORIENTATION = True
AUTO_WEBP = False
MAX_PIXELS = 100000000.0
"""


def ensure_thumbor(venv: Path = VENV) -> Path | None:
    """The `thumbor` command of `venv`, installed there first if needed; None on failure."""
    binary = venv / "bin" / "thumbor"
    if binary.exists():
        return binary
    logger.info("installing thumbor %s into %s", THUMBOR_VERSION, venv)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", f"thumbor=={THUMBOR_VERSION}"],
            check=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("thumbor could not be installed, the bench goes on without it: %s", error)
        return None
    return binary if binary.exists() else None


@dataclass(frozen=True)
class Thumbor:
    base_url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU so far of the thumbor processes."""
        return descendant_cpu_seconds({self.pid: "thumbor"}).get("thumbor", 0.0)


@contextmanager
def running_thumbor(binary: Path, root: Path, processes: int, logs_dir: Path) -> Iterator[Thumbor]:
    """thumbor serving `root` on a free port in `processes` processes."""
    config = logs_dir / "thumbor.conf"
    config.write_text(CONFIG.format(root=str(root), quality=QUALITY))
    port = free_port()
    argv = [
        str(binary), "-i", LOOPBACK, "-p", str(port), "-c", str(config),
        "-l", "warning", "--processes", str(processes),
    ]  # fmt: skip
    process: ManagedProcess = spawn("thumbor", argv, dict(os.environ), logs_dir / "thumbor.log")
    base_url = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(lambda: _healthy(base_url), READY_SECONDS, "thumbor", process)
        yield Thumbor(base_url, process.pid)
    finally:
        process.stop(5.0)


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthcheck", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


async def thumbor_rate(
    thumbor: Thumbor, names: Sequence[str], processes: int, formats: Sequence[str]
) -> tuple[float, float]:
    """Images per second, and CPU ms per image: each image's 4 `fit-in` sizes in each of
    `formats`, `processes` * 2 images in flight."""
    base_url = thumbor.base_url
    gate = asyncio.Semaphore(processes * IN_FLIGHT_PER_PROCESS)
    limits = httpx.Limits(max_connections=processes * IN_FLIGHT_PER_PROCESS * len(PRESETS))
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def render(name: str) -> None:
            async with gate:
                for preset, image_format in itertools.product(PRESETS, formats):
                    box = f"{preset.width}x{preset.height}"
                    url = f"/unsafe/fit-in/{box}/{FILTERS.get(image_format, '')}{name}"
                    response = await client.get(url)
                    if response.status_code != 200:
                        raise RuntimeError(f"thumbor answered {response.status_code} for {url}")

        await asyncio.gather(*(render(name) for name in names[:processes]))  # warm up
        started, cpu_before = time.perf_counter(), thumbor.cpu_seconds()
        await asyncio.gather(*(render(name) for name in names))
        elapsed = time.perf_counter() - started
        cpu_ms = (thumbor.cpu_seconds() - cpu_before) * 1000 / len(names)
    rate = len(names) / elapsed
    logger.info(
        "thumbor: %d images in %.1f s, %.2f images/s, %.0f ms CPU per image",
        len(names),
        elapsed,
        rate,
        cpu_ms,
    )
    return rate, cpu_ms

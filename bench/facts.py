"""CPU cost of the facts (core.facts) per 12 MP image, as a ratio to one full decode.

Run: `python -m bench.facts`. It also reports one HEIC decode (pillow-heif, the decoder
the product uses) as a ratio to a JPEG decode of the same pixels.

The budget: all facts together at most 15 ms of worker CPU per 12 MP image. The facts run
on the prepared copy already in memory, as in the prepare activity; the SHA-256 of the
original is taken while the bytes stream, so it is reported apart (it is the API's cost
for a direct upload, the worker's for an upload link).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import tempfile
from pathlib import Path

from PIL import Image

import core.inspection  # noqa: F401  (registers the HEIF parser)
from bench.compute import LIMITS, cpu_seconds, full_decode
from bench.images import camera_jpeg
from core import vips_engine
from core.facts import compute_facts
from core.imaging import DecodedImage, decode_source
from core.settings import Settings

logger = logging.getLogger("bench.facts")
BUDGET_MS = 15.0


def measure(repeats: int) -> dict[str, float]:
    data = camera_jpeg(4000, 3000)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source"
        source.write_bytes(data)
        copy = decode_source(source, LIMITS)
    decode_ms = cpu_seconds(full_decode, data, repeats) * 1000
    facts_ms = cpu_seconds(lambda _: _facts(copy), data, repeats * 4) * 1000
    sha_ms = cpu_seconds(_sha, data, repeats * 4) * 1000
    heic_ms = cpu_seconds(_heic_decode, _heic_of(data), repeats) * 1000
    return {
        "one full decode ms": decode_ms,
        "HEIC decode ms (same pixels)": heic_ms,
        "HEIC decode / JPEG decode": heic_ms / decode_ms,
        "facts ms": facts_ms,
        "facts / full decode": facts_ms / decode_ms,
        "sha256 of the original ms": sha_ms,
        "original MB": len(data) / 1e6,
    }


def _facts(copy: DecodedImage) -> None:
    compute_facts(copy.pixels)


def _heic_of(jpeg: bytes) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as image:
        buffer = io.BytesIO()
        image.save(buffer, "HEIF", quality=85)
    return buffer.getvalue()


def _heic_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def _sha(data: bytes) -> None:
    hashlib.sha256(data).digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/facts.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    vips_engine.configure(Settings().worker_vips_threads)
    results = measure(args.repeats)
    for name, value in results.items():
        logger.info("12 MP JPEG  %-28s %8.3f", name, value)
    logger.info("facts within budget (<= %.0f ms): %s", BUDGET_MS, results["facts ms"] <= BUDGET_MS)
    args.output.write_text(json.dumps({"facts": results}, indent=2) + "\n")
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()

"""The benchmarks' inputs: deterministic photos with camera-like grain.

Smooth synthetic images compress far better than photos (a 12 MP one is 1.4 MB), which
would flatter every step that moves or decodes bytes. Grain brings them to what cameras
and phones produce: about 3.8 MB for 12 MP and 7.5 MB for 24 MP at quality 90, the
spec's average upload of 4 MB.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageChops

from tests.factories import photo

# Uniform grain of +-GRAIN levels per pixel, the same in every channel (luma noise).
GRAIN = 10
QUALITY = 90


def camera_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A `photo` with seeded grain, as a baseline JPEG: the same bytes on every run."""
    rng = random.Random(seed)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    noise = noise.point(lambda value: 128 + (value - 128) * GRAIN // 128)
    scene = photo(width, height, seed=seed)
    grainy = ImageChops.add(scene, Image.merge("RGB", (noise,) * 3), offset=-128)
    buffer = io.BytesIO()
    grainy.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()

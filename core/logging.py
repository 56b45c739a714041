"""Logging set up once, by each entry point."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    # libvips reports every operation at INFO.
    logging.getLogger("pyvips").setLevel(logging.WARNING)

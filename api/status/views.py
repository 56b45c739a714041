"""Turn rows into API schemas, with the API's signed links (see api/status/links.py). The image
document itself is built in `core.documents`, which the webhook activities share."""

from __future__ import annotations

from collections.abc import Sequence

from api.schemas import ImageSummary
from api.status.links import Linker
from core.documents import LinkableImage
from core.documents import image_public as image_public
from core.documents import image_summary as image_summary
from core.documents import version_links as version_links


def image_summaries(images: Sequence[LinkableImage], linker: Linker) -> list[ImageSummary]:
    return [image_summary(image, linker) for image in images]

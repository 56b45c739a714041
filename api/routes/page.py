"""The test page at `/`: plain HTML, with its script and style as files of their own so that
its CSP allows no inline code. Thumbnails load from, and upload links post to, S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.deps import PageCspDep
from core.settings import Settings

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE = STATIC_DIR / "index.html"
# Without an endpoint setting, boto3 addresses AWS S3 itself.
AWS_S3 = "https://*.amazonaws.com"


def page_csp(settings: Settings) -> str:
    """Scripts and styles from the API only; images and upload POSTs to the S3 endpoint."""
    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    s3 = AWS_S3
    if endpoint:
        parts = urlsplit(endpoint)
        s3 = f"{parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: {s3}; connect-src 'self' {s3}; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def install_page(app: FastAPI, settings: Settings) -> None:
    app.state.page_csp = page_csp(settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)


@router.get("/")
async def read_page(csp: PageCspDep) -> FileResponse:
    return FileResponse(PAGE, media_type="text/html", headers={"Content-Security-Policy": csp})

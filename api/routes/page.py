"""The test page at `/`: plain HTML and JS, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)
PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


@router.get("/")
async def read_page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")

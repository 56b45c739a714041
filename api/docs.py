"""`/docs` from the API itself: Swagger UI's files come from the `fastapi-offline` wheel,
never from a CDN, so the docs work offline and the page loads no third-party script.

The page's one inline script (Swagger UI's start-up call) is allowed by its hash, so the
CSP needs no 'unsafe-inline' for scripts.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _csp_for(html: bytes) -> str:
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def install_docs(app: FastAPI) -> None:
    """Call on an app created with `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{DOCS_URL}/oauth2-redirect"
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=oauth2_redirect_url,
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )
    body = bytes(page.body)
    headers = {"Content-Security-Policy": _csp_for(body)}

    @app.get(DOCS_URL, include_in_schema=False)
    async def read_docs() -> HTMLResponse:
        return HTMLResponse(body, headers=headers)

    redirect = get_swagger_ui_oauth2_redirect_html()
    redirect_headers = {"Content-Security-Policy": _csp_for(bytes(redirect.body))}

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def read_docs_redirect() -> HTMLResponse:
        return HTMLResponse(bytes(redirect.body), headers=redirect_headers)


def install_openapi(app: FastAPI, *, open_mode: bool) -> None:
    """`/openapi.json` as this process serves requests: with AUTH_MODE=open no route needs
    the Authorization header, so every security requirement gains the empty alternative."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            if open_mode:
                _make_security_optional(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _make_security_optional(document: dict[str, Any]) -> None:
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and operation.get("security"):
                operation["security"] = [*operation["security"], {}]

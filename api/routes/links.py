"""`/links/{token}`: the object a listing's link names, as a redirect to a fresh presign.

No key is asked for: the link's signature is the capability (so `<img src>` works), and
it names one object of one project. See api/status/links.py.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse

from api.deps import LinkSignerDep, StorageDep
from api.schemas import errors
from api.status.links import MAX_TOKEN_CHARS

router = APIRouter(tags=["links"])
_ERRORS = errors(403, 422)
Token = Annotated[str, Path(max_length=MAX_TOKEN_CHARS)]


@router.get("/links/{token}", status_code=307, responses=_ERRORS, response_class=RedirectResponse)
def open_link(token: Token, signer: LinkSignerDep, storage: StorageDep) -> RedirectResponse:
    """307 to a presigned S3 URL; 403 `invalid_link` (tampered) or `link_expired`."""
    target = signer.verify(token)
    url = storage.presign_get(target.key, target.content_type, attachment=target.attachment)
    # The presign lives LINK_EXPIRY_SECONDS from now: a cached redirect must not outlive it.
    max_age = max(0, min(target.expires_at - int(time.time()), signer.expiry_seconds // 2))
    return RedirectResponse(url, 307, headers={"Cache-Control": f"private, max-age={max_age}"})

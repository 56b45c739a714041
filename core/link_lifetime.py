"""How long a `/links/...` URL lives: the API signs links with it, and the workers keep a
replaced object at least that long, so a link handed out before a change still works.

A link's expiry is `now + LINK_EXPIRY_SECONDS` rounded up to a window of a quarter of it
(`api/status/links.py`: a listing read twice within a window gives the same URLs), so a
link lives at least `LINK_EXPIRY_SECONDS` and less than `LINK_EXPIRY_SECONDS` plus one
window. Both sides take the rule from here, so they cannot drift apart.
"""

from __future__ import annotations

from datetime import timedelta

from core.settings import Settings

# Beyond the longest link: the API hosts' clocks (which date links) against Postgres' (which
# dates the commit and the sweep), and a listing answered just after the commit.
SUPERSEDED_MARGIN_SECONDS = 300


def link_window_seconds(expiry_seconds: int) -> int:
    """The window link expiries are rounded up to."""
    return max(1, expiry_seconds // 4)


def longest_link_seconds(expiry_seconds: int) -> int:
    """No link signed now outlives now plus this."""
    return expiry_seconds + link_window_seconds(expiry_seconds)


def superseded_keep(settings: Settings) -> timedelta:
    """How long an object a version row stopped naming is kept before the sweep deletes it:
    every link to it handed out before that commit has expired by then."""
    longest = longest_link_seconds(settings.link_expiry_seconds)
    return timedelta(seconds=longest + SUPERSEDED_MARGIN_SECONDS)

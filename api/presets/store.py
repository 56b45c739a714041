"""`PresetStore`: read and replace a project's preset set (the API side of `core.preset_sets`)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.errors import ApiErrorCode, UnprocessableError
from core.preset_rules import problems
from core.preset_sets import PresetSet, current_presets, store_presets
from core.presets import Preset


class PresetStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    async def current(self, project_id: int) -> PresetSet:
        return await run_in_threadpool(self._current, project_id)

    async def replace(self, project_id: int, presets: list[Preset]) -> PresetSet:
        """Store `presets` as the project's next version, or 422 `invalid_presets` with
        every problem named (nothing is stored then)."""
        found = problems(presets)
        if found:
            raise UnprocessableError("; ".join(found), code=ApiErrorCode.INVALID_PRESETS)
        return await run_in_threadpool(self._store, project_id, presets)

    def _current(self, project_id: int) -> PresetSet:
        with self._sessions() as session:
            return current_presets(session, project_id)

    def _store(self, project_id: int, presets: list[Preset]) -> PresetSet:
        with self._sessions.begin() as session:
            return store_presets(session, project_id, presets)

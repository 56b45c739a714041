"""`GET/PUT /projects/{id}/presets` in process, against the real Postgres."""

from __future__ import annotations

import random
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import ProjectPresets

SPEC = [
    {"name": "thumb", "width": 150, "height": 120},
    {"name": "big_thumb", "width": 700, "height": 700},
    {"name": "big_1920", "width": 1920, "height": 1080},
    {"name": "d2500", "width": 2500, "height": 2500},
]


def project() -> int:
    return random.randrange(10**9, 10**12)


def stored_versions(sessions: sessionmaker[Session], project_id: int) -> int:
    with sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(ProjectPresets)
            .where(ProjectPresets.project_id == project_id)
        )
    return count or 0


async def test_a_project_starts_with_the_default_set(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/projects/{project()}/presets")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 0
    assert [(p["name"], p["width"], p["height"]) for p in body["presets"]] == [
        (p["name"], p["width"], p["height"]) for p in SPEC
    ]
    assert all(p["fit"] == "inside" and p["formats"] == ["auto"] for p in body["presets"])


async def test_each_put_is_a_new_version(
    api: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    project_id = project()
    square = {"name": "square_400", "width": 400, "height": 400, "fit": "cover"}
    square |= {"formats": ["webp"], "quality": {"webp": 75}}
    first = await api.put(f"/projects/{project_id}/presets", json={"presets": [*SPEC, square]})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    thumb = {"name": "thumb", "width": 200, "height": 160}
    second = await api.put(
        f"/projects/{project_id}/presets", json={"presets": [thumb, *SPEC[1:], square]}
    )
    assert second.json()["version"] == 2
    current = (await api.get(f"/projects/{project_id}/presets")).json()
    assert current["version"] == 2
    assert current["presets"][0] == {
        "name": "thumb",
        "width": 200,
        "height": 160,
        "fit": "inside",
        "gravity": "centre",
        "formats": ["auto"],
        "quality": {},
    }
    assert current["presets"][-1]["quality"] == {"webp": 75}
    assert stored_versions(sessions, project_id) == 2


async def put_error(api: httpx.AsyncClient, project_id: int, body: Any) -> dict[str, Any]:
    response = await api.put(f"/projects/{project_id}/presets", json=body)
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_bad_sets_are_refused_whole_with_stable_codes(
    api: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    project_id = project()
    cases: list[tuple[Any, str, str]] = [
        ({"presets": SPEC[1:]}, "invalid_presets", "missing thumb"),
        ({"presets": [*SPEC, {"name": "a/b", "width": 9, "height": 9}]}, "invalid_presets", "a-z"),
        ({"presets": [*SPEC, {**SPEC[0]}]}, "invalid_presets", "unique: thumb"),
        ({"presets": [*SPEC, {"name": "x", "width": 9000, "height": 9}]}, "validation_error", ""),
        (
            {"presets": [*SPEC, {"name": "x", "width": 9, "height": 9, "formats": []}]},
            "validation_error",
            "",
        ),
        (
            {"presets": [*SPEC, {"name": "x", "width": 9, "height": 9, "formats": ["gif"]}]},
            "validation_error",
            "",
        ),
        (
            {"presets": [*SPEC, {"name": "x", "width": 9, "height": 9, "extra": 1}]},
            "validation_error",
            "",
        ),
        ({"presets": [*SPEC] * 5}, "validation_error", ""),
        ({"presets": []}, "validation_error", ""),
    ]
    for body, code, words in cases:
        error = await put_error(api, project_id, body)
        assert error["code"] == code, (body, error)
        assert words in error["message"], error
    assert stored_versions(sessions, project_id) == 0

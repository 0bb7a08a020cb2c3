"""The environment the tests run in is the one requirements.lock records.

``make`` installs every package constrained to the lock and refuses a ``.venv`` that
differs from it; this checks the same from inside the test process, so a suite run in an
environment that drifted (a hand-installed upgrade, a stale venv) says so.
"""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO

LOCK = REPO / "requirements.lock"


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", line
        pins[req.name] = spec.version
    return pins


def test_every_installed_package_is_the_locked_version() -> None:
    pins = locked()
    assert {"torch", "ray", "faster-whisper", "psycopg", "fastapi"} <= set(pins)
    wrong = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"(locked, installed): {wrong}"


def test_the_project_dependencies_are_all_locked() -> None:
    pins = {canonicalize_name(name) for name in locked()}
    requires = metadata.requires("aisubs") or []
    for line in requires:
        req = Requirement(line)
        if req.marker is not None and "extra" in str(req.marker):
            extra = str(req.marker).split("==")[-1].strip(" '\"")
            if extra in {"supabase", "gcs", "s3"}:
                continue  # optional extras production images add; not installed here
        assert canonicalize_name(req.name) in pins, req.name

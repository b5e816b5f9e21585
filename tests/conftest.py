"""Shared test fixtures: where the read-only sample data and official fixtures live."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Test modules live in sub-folders mirroring the package; the helpers beside this file
# (`tiny_models`) are imported by name from any of them.
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"sample data folder {DATA} is absent")
    return DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"official fixtures folder {FIXTURES} is absent")
    return FIXTURES


@pytest.fixture(scope="session", autouse=True)
def _isolated_vitpose_cache(tmp_path_factory: pytest.TempPathFactory):
    """Engine choices and exported graphs go to a fresh cache folder for the test session,
    never to the user's (``$VITPOSE_CACHE`` is read by `vitpose.inference.engines`)."""
    import os
    old = os.environ.get("VITPOSE_CACHE")
    os.environ["VITPOSE_CACHE"] = str(tmp_path_factory.mktemp("vitpose-cache"))
    yield
    if old is None:
        os.environ.pop("VITPOSE_CACHE", None)
    else:
        os.environ["VITPOSE_CACHE"] = old

"""Every benchmark script in scripts/ and fixture maker in tests/tools/ imports and answers
``--help``: the scripts the docs quote (docs/PERFORMANCE.md) must keep working as the package
changes. One process; each script runs as ``__main__`` with ``--help`` (argparse prints the
usage and exits 0)."""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*(ROOT / "scripts").glob("*.py"), *(ROOT / "tests" / "tools").glob("*.py")])


def test_there_are_scripts():
    assert len(SCRIPTS) >= 4


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_help(script, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        runpy.run_path(str(script), run_name="__main__")
    assert e.value.code in (0, None)
    assert "usage:" in out.getvalue()

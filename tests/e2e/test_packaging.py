"""Packaging metadata: installing prints no setuptools deprecation warning (issue 16.6)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_license_is_an_spdx_string_without_setuptools_warnings() -> None:
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    messages = [str(w.message).splitlines()[0] for w in caught
                if issubclass(w.category, setuptools.SetuptoolsDeprecationWarning)]
    assert messages == []
    assert dist.metadata.license_expression == "Apache-2.0"

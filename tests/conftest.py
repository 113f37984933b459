"""Shared test fixtures: the real sample data directory and small helpers.

Tests that need ``../shared/data`` read it through ``CLEARCUBE_TEST_DATA`` and skip, saying why,
when it is unset or absent (``.ci/run`` sets it when the folder exists).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The real Sentinel sample data folder (``$CLEARCUBE_TEST_DATA``), or skip the test."""
    root = os.environ.get("CLEARCUBE_TEST_DATA")
    if not root:
        pytest.skip(
            "CLEARCUBE_TEST_DATA is unset; point it at ../shared/data to run real-data tests"
        )
    path = Path(root)
    if not path.is_dir():
        pytest.skip(f"CLEARCUBE_TEST_DATA={root} is not a folder; point it at ../shared/data")
    return path


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (256 × 256 px, 9 dates) embedded demo catalog generated once per session (~3 s)."""
    from clearcube.catalogs.demo import generate_demo_region

    return generate_demo_region(tmp_path_factory.mktemp("demo") / "catalog", size=256)

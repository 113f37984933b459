"""Fixtures for the catalogs tests: the real STAC sample data, served by the embedded API."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from real_stac import build_real_catalog, raw_items, renamed

from clearcube.catalogs.server import serve_catalog

#: Earth Search's Collection-1 reprocessing moved beside the original processing.
REPROCESSED = {"sentinel-2-c1-l2a": "sentinel-2-l2a"}


@pytest.fixture(scope="session")
def raw(test_data: Path) -> list[dict[str, Any]]:
    """Every distinct real STAC item in ``$CLEARCUBE_TEST_DATA/stac`` as raw JSON."""
    return raw_items(test_data)


@pytest.fixture(scope="session")
def raw_reprocessed(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same items with two processings of some acquisitions in one collection."""
    return renamed(raw, REPROCESSED)


@pytest.fixture(scope="session")
def real_catalog(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog folder holding the real items, one sub-folder per collection."""
    return build_real_catalog(test_data, tmp_path_factory.mktemp("real-stac"))


@pytest.fixture(scope="session")
def real_api(real_catalog: Path) -> Iterator[str]:
    """The real items served by ``rustac serve`` for the whole session."""
    with serve_catalog(real_catalog) as url:
        yield url


@pytest.fixture(scope="session")
def reprocessed_api(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API whose ``sentinel-2-l2a`` holds two processings of some acquisitions."""
    folder = build_real_catalog(test_data, tmp_path_factory.mktemp("reprocessed"), REPROCESSED)
    with serve_catalog(folder) as url:
        yield url

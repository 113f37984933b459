"""``clearcube run --mask asset``: clouds from a mask asset the catalog provides.

The embedded demo catalog's Sentinel-2 items carry ``truth_cloud``, the simulation's labels
(0 clear, 1 thick cloud, 2 thin cloud, 3 cirrus, 4 shadow). A run over the reliability tests'
small region (``conftest.py``) that masks with it must store, for every fused date, exactly the
pixels whose label is one of ``--mask-values``; the oracle reads the label COGs straight from the
catalog's files with rasterio, not through the cube loader. Bad mask arguments exit 2 before the
output folder is claimed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearcube.pipeline.cli import main

pytestmark = pytest.mark.integration

TRUTH_ASSET = "truth_cloud"
#: Thick cloud, thin cloud, cirrus and shadow: everything but clear (0).
CLOUD_VALUES = (1, 2, 3, 4)


def run_argv(runs: Any, out: Path, *extra: str) -> list[str]:
    """``clearcube run`` argv for the session's region, period, checkpoint, settings and cluster."""
    argv = ["run", "--bbox", *map(str, runs.region), "--start", runs.period[0]]
    argv += ["--end", runs.period[1], "--out", str(out), "--checkpoint", str(runs.checkpoint)]
    argv += [f"--{k}={v}" for k, v in runs.args.items()]
    return [*argv, "--scheduler", runs.client.scheduler.address, *extra]


def truth_labels(
    day: str, crs: str, transform: tuple[float, ...], shape: tuple[int, int]
) -> np.ndarray:
    """The L1C ``truth_cloud`` labels of ``day`` on the cube's grid (``transform`` in GDAL order).

    Every demo asset lies on the cube's 10 m grid (same CRS, pixel edges on multiples of 10 m),
    so a window read is exact; the window offsets are checked to be whole pixels.
    """
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    from clearcube.catalogs.demo import ensure_demo_catalog

    features = json.loads((ensure_demo_catalog() / "sentinel-2-l1c" / "items.json").read_text())
    hrefs = {
        f["assets"][TRUTH_ASSET]["href"]
        for f in features["features"]
        if f["properties"]["datetime"].startswith(day)
    }
    grid = Affine.from_gdal(*transform)
    labels = []
    for href in sorted(hrefs):  # a reprocessed duplicate of a date carries the same labels
        with rasterio.open(href) as src:
            assert str(src.crs) == crs
            assert (grid.a, grid.e) == (src.transform.a, src.transform.e)
            col, row = ~src.transform @ (grid.c, grid.f)
            assert np.allclose([col, row], np.round([col, row]))
            window = Window(round(col), round(row), shape[1], shape[0])
            labels.append(src.read(1, window=window, boundless=False))
    assert labels, f"no sentinel-2-l1c item on {day}"
    return labels[0]


@pytest.fixture(scope="module")
def asset_run(runs: Any) -> Path:
    """The output folder of one ``clearcube run --mask asset --mask-asset truth_cloud`` run."""
    out = runs.tmp.mktemp("mask-asset") / "out"
    values = [str(v) for v in CLOUD_VALUES]
    argv = run_argv(runs, out, "--mask", "asset", "--mask-asset", TRUTH_ASSET)
    assert main([*argv, "--mask-values", *values]) == 0
    return out


def test_stored_cloud_is_the_asset_classes(asset_run: Path) -> None:
    from clearcube.pipeline.cube import open_cube

    record = json.loads((asset_run / "run.json").read_text())
    assert record["finished"]
    assert record["options"]["mask_asset"] == TRUTH_ASSET
    assert record["options"]["mask_values"] == list(CLOUD_VALUES)
    cube = open_cube(asset_run / "cube.zarr")
    days = [str(t)[:10] for t in cube["time"].values]
    fused = record["result"]["dates"]
    assert len(fused) == 2
    shape = (cube.sizes["y"], cube.sizes["x"])
    transform = tuple(float(v) for v in cube.attrs["transform"])
    for day in fused:
        labels = truth_labels(day, str(cube.attrs["crs"]), transform, shape)
        stored = cube["cloud"].isel(time=days.index(day)).values
        assert stored.dtype == bool
        np.testing.assert_array_equal(stored, np.isin(labels, CLOUD_VALUES), err_msg=day)
    # The case is informative: the fused dates mix clear and cloudy pixels, and classes other
    # than thick cloud occur, so --mask-values 1 would have given a different mask.
    both = np.stack([truth_labels(d, str(cube.attrs["crs"]), transform, shape) for d in fused])
    assert 0 < np.isin(both, CLOUD_VALUES).mean() < 1
    assert np.isin(both, (2, 3, 4)).any()


def test_mask_asset_missing_on_the_items(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = run_argv(runs, out, "--mask", "asset", "--mask-asset", "cloud_probability")
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("clearcube: error: ")
    assert "'cloud_probability'" in error and TRUTH_ASSET in error  # names it and the choices
    assert not out.exists()  # checked before the folder is claimed: a corrected rerun may use it


@pytest.mark.parametrize(
    ("flags", "word"),
    [
        (("--mask", "asset"), "--mask-asset"),
        (("--mask-asset", TRUTH_ASSET), "--mask asset"),
    ],
)
def test_mask_flags_that_do_not_fit(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], word: str
) -> None:
    out = tmp_path / "out"
    assert main(run_argv(runs, out, *flags)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("clearcube: error: ") and word in error
    assert not out.exists()

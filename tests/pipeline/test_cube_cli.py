"""``clearcube cube`` in-process: the embedded demo catalog end to end, and bad input exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clearcube.pipeline.cli import main
from clearcube.pipeline.cube import open_cube

BBOX = ["10.08", "45.05", "10.09", "45.06"]  # inside the demo region, about 80 x 110 px
DATES = ["--start", "2024-05-01", "--end", "2024-05-25"]


@pytest.mark.integration
def test_cube_over_the_demo_region(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clearcube.catalogs import search

    out = tmp_path / "cube.zarr"
    assert main(["cube", "--bbox", *BBOX, *DATES, "--out", str(out)]) == 0
    ds = open_cube(out)
    scenes = search(bbox=[float(v) for v in BBOX], start="2024-05-01", end="2024-05-25")
    days = {s.datetime.date() for s in scenes.s2}  # the demo is at 10° E: UTC 10:15 is the same day
    assert ds.sizes["time"] == len(days) >= 2
    assert list(ds.band.values)[:2] == ["B01", "B02"] and ds.sizes["band"] == 13
    assert (ds["s2"].values > 0).all()  # the bbox is inside every scene: no nodata
    paired = ~np.isnat(ds.s1_time.values)
    assert paired.any() and not np.isnan(ds["s1"].values[paired]).any()
    assert "cube written" in capsys.readouterr().out
    # a rerun finds the cube complete and succeeds without rewriting
    assert main(["cube", "--bbox", *BBOX, *DATES, "--out", str(out)]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--bbox", "10.09", "45.05", "10.08", "45.06", *DATES],  # inverted bbox
        ["--bbox", *BBOX, "--start", "2024-06-01", "--end", "2024-05-01"],  # start after end
        ["--bbox", *BBOX, *DATES, "--profile", "nowhere"],  # unknown profile
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cube", *argv, "--out", str(tmp_path / "c.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clearcube: error:") and "\n" not in err
    assert not (tmp_path / "c.zarr").exists()

"""write_cube / open_cube: Zarr v3 round trip, resume after an interruption, refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr
import zarr

from clearcube.errors import BadInputError
from clearcube.pipeline.cube import load_cube, open_cube, plan_regions, write_cube

sys.path.insert(0, str(Path(__file__).parent))
from cube_fixtures import inner_bbox, standard_scenes

ASSETS = {"B02": "blue", "B05": "rededge1", "B09": "nir09"}


class Stop(Exception):
    """Raised from the progress callback to simulate an interrupted build."""


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pystac.Item]:
    return standard_scenes(tmp_path_factory.mktemp("scenes"))


def _cube(scenes: dict[str, pystac.Item], bands=ASSETS) -> xr.Dataset:
    return load_cube(
        [scenes["d0a"], scenes["d1"], scenes["d2"]], [scenes["s1x"], scenes["s1y"]],
        bbox=inner_bbox(600), s2_assets=bands, extra_assets={"scl": "scl"}, chunks=32,
        s1_pairing={"d0a": "s1x", "d1": None, "d2": "s1y"},
    )  # fmt: skip


def test_plan_regions_cover_the_grid_once() -> None:
    regions = plan_regions((154, 100), 64)
    hits = np.zeros((154, 100), dtype=int)
    for ys, xs in regions:
        hits[ys, xs] += 1
    assert (hits == 1).all() and len(regions) == 3 * 2


def test_round_trip_is_exact(tmp_path: Path, scenes) -> None:
    ds = _cube(scenes)
    calls: list[tuple[int, int]] = []
    out = write_cube(
        ds, tmp_path / "c.zarr", region_size=64, progress=lambda d, n: calls.append((d, n))
    )
    n = len(plan_regions((ds.sizes["y"], ds.sizes["x"]), 64))
    assert calls == [(k, n) for k in range(n + 1)]
    back = open_cube(out)
    assert back.attrs["clearcube_complete"] is True
    assert back["s2"].dtype == np.uint16 and back["scl"].dtype == np.uint8
    assert back["s2"].encoding["chunks"] == (1, 3, 32, 32)
    expected = ds.compute()
    xr.testing.assert_equal(back.compute(), expected)
    assert back.attrs["crs"] == ds.attrs["crs"] and back.attrs["transform"] == ds.attrs["transform"]
    assert np.isnat(back.s1_time.values[1]) and np.isnan(back["s1"].isel(time=1).values).all()
    meta = zarr.open_group(str(out), mode="r")
    assert meta.metadata.zarr_format == 3


def test_interrupted_build_is_refused_then_resumes(tmp_path: Path, scenes) -> None:
    ds = _cube(scenes)
    path = tmp_path / "c.zarr"
    n = len(plan_regions((ds.sizes["y"], ds.sizes["x"]), 64))
    assert n >= 4

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        write_cube(ds, path, region_size=64, progress=stop_after_two)
    with pytest.raises(BadInputError, match=rf"incomplete \(2 of {n} regions\).*resume"):
        open_cube(path)

    calls: list[tuple[int, int]] = []
    write_cube(_cube(scenes), path, region_size=64, progress=lambda d, t: calls.append((d, t)))
    # the rerun starts at 2 done and writes only the remaining n - 2 regions
    assert calls == [(k, n) for k in range(2, n + 1)]
    xr.testing.assert_equal(open_cube(path).compute(), ds.compute())

    # a third run finds everything done and writes nothing
    again: list[tuple[int, int]] = []
    write_cube(ds, path, region_size=64, progress=lambda d, t: again.append((d, t)))
    assert again == [(n, n)]


def test_resume_with_other_arguments_is_refused(tmp_path: Path, scenes) -> None:
    path = tmp_path / "c.zarr"
    with pytest.raises(Stop):
        write_cube(_cube(scenes), path, region_size=64, progress=_stop_at(1))
    with pytest.raises(BadInputError, match="different arguments"):
        write_cube(_cube(scenes, {"B03": "green"}), path, region_size=64)
    with pytest.raises(BadInputError, match="different arguments"):
        write_cube(_cube(scenes), path, region_size=128)


def _stop_at(k: int):
    def stop(done: int, total: int) -> None:
        if done == k:
            raise Stop

    return stop


def test_refusals(tmp_path: Path, scenes) -> None:
    with pytest.raises(BadInputError, match="no cube at"):
        open_cube(tmp_path / "nothing.zarr")
    other = tmp_path / "other"
    other.mkdir()
    (other / "file.txt").write_text("x")
    with pytest.raises(BadInputError, match="not a clearcube Zarr store"):
        write_cube(_cube(scenes), other, region_size=64)
    with pytest.raises(BadInputError, match="multiple of the chunk size"):
        write_cube(_cube(scenes), tmp_path / "c.zarr", region_size=48)


def test_threads_scheduler_bypasses_the_client_and_writes_the_same(tmp_path: Path, scenes) -> None:
    from distributed import Client, LocalCluster, get_task_stream

    ds = _cube(scenes)
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with get_task_stream(client) as on_cluster:
            write_cube(ds, tmp_path / "cluster.zarr", region_size=64)
        with get_task_stream(client) as threaded:
            write_cube(ds, tmp_path / "threads.zarr", region_size=64, scheduler="threads")
    assert len(on_cluster.data) > 0 and threaded.data == []
    xr.testing.assert_identical(
        open_cube(tmp_path / "threads.zarr").compute(),
        open_cube(tmp_path / "cluster.zarr").compute(),
    )


def test_masks_on_threads_bypass_the_client_and_store_the_same(tmp_path: Path, scenes) -> None:
    """The mask stage's ``scheduler="threads"`` (what composite uses on its own local cluster)."""
    import shutil

    from distributed import Client, LocalCluster, get_task_stream

    from clearcube.pipeline.cube_masks import mask_and_choose
    from clearcube.pipeline.masking import MaskRequest

    write_cube(_cube(scenes), tmp_path / "base.zarr", region_size=64)
    for name in ("cluster", "threads"):
        shutil.copytree(tmp_path / "base.zarr", tmp_path / f"{name}.zarr")
    kwargs = {"start": "2024-06-01", "end": "2024-06-30", "target": None, "fuse": 3}
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with get_task_stream(client) as on_cluster:
            a = mask_and_choose(
                tmp_path / "cluster.zarr", MaskRequest(method="scl"), progress=lambda *_: None,
                **kwargs,
            )  # fmt: skip
        with get_task_stream(client) as threaded:
            b = mask_and_choose(
                tmp_path / "threads.zarr", MaskRequest(method="scl"), progress=lambda *_: None,
                scheduler="threads", **kwargs,
            )  # fmt: skip
    assert len(on_cluster.data) > 0 and threaded.data == []
    assert a == b
    cloud = open_cube(tmp_path / "threads.zarr")["cloud"].values
    assert cloud.any() and not cloud.all()  # the fixture's SCL has clouds and ground
    np.testing.assert_array_equal(cloud, open_cube(tmp_path / "cluster.zarr")["cloud"].values)
    # the measured clear fractions it hands on (the quicklook's date choice reads them)
    s2 = open_cube(tmp_path / "threads.zarr")["s2"].values
    ground = ~cloud & (s2 > 0).all(axis=1)
    expected = [float(ground[i].mean()) for i in b.indices]
    assert b.measured == pytest.approx(expected, abs=1e-6) and len(set(expected)) > 1

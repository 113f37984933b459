"""write_products' quicklook and report: read on the client's threads, never through the cluster."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pystac
import pytest

from clearcube.pipeline.cube import load_cube, open_cube, write_cube
from clearcube.pipeline.dates import DateSelection

sys.path.insert(0, str(Path(__file__).parent))
from cube_fixtures import inner_bbox, standard_scenes

RGB = {"B02": "blue", "B03": "green", "B04": "red"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pystac.Item]:
    return standard_scenes(tmp_path_factory.mktemp("scenes"))


def _store(tmp_path: Path, cube_path: Path):  # -> MosaicStore, filled and assembled
    from mosaic_oracle import assemble, fill_mosaic

    from clearcube.pipeline.mosaic import open_mosaic, spec_for_cube

    spec = spec_for_cube(cube_path, tile=32, overlap=8, uncertainty=False, run={})
    store = open_mosaic(tmp_path / "m.zarr", spec)
    image = np.asarray(open_cube(cube_path)["s2"].isel(time=0).values, np.float32) / 10_000
    observed = np.zeros((3, *image.shape[1:]), np.float32)
    observed[0] = 1.0
    fill_mosaic(
        store,
        lambda t: {
            "composite": image[:, t.y0 : t.y1, t.x0 : t.x1] + 0.01,
            "provenance": observed[:, t.y0 : t.y1, t.x0 : t.x1],
        },
    )
    assemble(store)
    return store


def test_the_quicklook_reads_the_cube_on_the_client_not_the_cluster(
    tmp_path: Path, scenes: dict[str, pystac.Item]
) -> None:
    from distributed import Client, LocalCluster, get_task_stream

    from clearcube.pipeline.products import _quicklook_and_report

    cube = load_cube(
        [scenes["d0a"], scenes["d1"], scenes["d2"]], None, bbox=inner_bbox(600), s2_assets=RGB,
        chunks=32,
    )  # fmt: skip
    write_cube(cube, tmp_path / "cube.zarr", region_size=64)
    store = _store(tmp_path, tmp_path / "cube.zarr")
    times = open_cube(tmp_path / "cube.zarr")["time"].values
    selection = DateSelection(
        target=times[1], indices=(0, 1, 2), dates=tuple(times), clear_fraction=(0.9, 0.5, 0.7),
        measured=(0.9, 0.5, 0.7),
    )  # fmt: skip
    (tmp_path / "alone").mkdir()
    (tmp_path / "run").mkdir()
    alone, _ = _quicklook_and_report(store, tmp_path / "cube.zarr", selection, tmp_path / "alone")
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as on_cluster,
    ):
        run, report = _quicklook_and_report(
            store, tmp_path / "cube.zarr", selection, tmp_path / "run"
        )
    assert [t["key"] for t in on_cluster.data] == []  # no window went through a worker
    assert run.read_bytes() == alone.read_bytes() and run.stat().st_size > 0
    assert report["overall"]

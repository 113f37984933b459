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


def _store(tmp_path: Path, cube_path: Path, *, chunk: int = 512, mixed: bool = False):
    """A filled, assembled mosaic store; ``mixed``: all three classes, and a band-0 gap."""
    import dataclasses

    from mosaic_oracle import assemble, fill_mosaic

    from clearcube.pipeline.mosaic import open_mosaic, spec_for_cube

    spec = spec_for_cube(cube_path, tile=32, overlap=8, uncertainty=False, run={})
    store = open_mosaic(tmp_path / "m.zarr", dataclasses.replace(spec, chunk=chunk))
    image = np.asarray(open_cube(cube_path)["s2"].isel(time=0).values, np.float32) / 10_000
    layers = np.zeros((3, *image.shape[1:]), np.float32)
    if mixed:
        pick = np.random.default_rng(3).integers(0, 3, image.shape[1:])
        for k in range(3):
            layers[k] = pick == k
        image[0, 5:9, :] = np.nan  # the composite's first band decides validity
    else:
        layers[0] = 1.0
    fill_mosaic(
        store,
        lambda t: {
            "composite": image[:, t.y0 : t.y1, t.x0 : t.x1] + 0.01,
            "provenance": layers[:, t.y0 : t.y1, t.x0 : t.x1],
        },
    )
    assemble(store)
    return store


def _selection(times: np.ndarray) -> DateSelection:
    return DateSelection(
        target=times[1], indices=(0, 1, 2), dates=tuple(times), clear_fraction=(0.9, 0.5, 0.7),
        measured=(0.9, 0.5, 0.7),
    )  # fmt: skip


@pytest.mark.parametrize(("chunk", "max_size"), [(512, 1024), (16, 1024), (16, 7), (20, 12)])
def test_one_pass_quicklook_and_report_equal_whole_array_oracles(
    tmp_path: Path, scenes: dict[str, pystac.Item], chunk: int, max_size: int
) -> None:
    """The one-pass panels and counts equal the same computed on whole arrays in numpy.

    The fixture is 74 px a side: chunks of 16 or 20 px with steps of 11 (``max_size=7``) and 7
    (``max_size=12``) put windows off the panel's ``::step`` grid, the last one shorter than a step.
    """
    from clearcube.pipeline.products import _quicklook_and_report
    from clearcube.pipeline.provenance import PROVENANCE, provenance_classes
    from clearcube.pipeline.quicklook import write_quicklook

    cube = load_cube(
        [scenes["d0a"], scenes["d1"], scenes["d2"]], None, bbox=inner_bbox(600), s2_assets=RGB,
        chunks=32,
    )  # fmt: skip
    write_cube(cube, tmp_path / "cube.zarr", region_size=64)
    store = _store(tmp_path, tmp_path / "cube.zarr", chunk=chunk, mixed=True)
    ds = open_cube(tmp_path / "cube.zarr")
    selection = _selection(ds["time"].values)
    (tmp_path / "got").mkdir()
    (tmp_path / "want").mkdir()
    got, report = _quicklook_and_report(
        store, tmp_path / "cube.zarr", selection, tmp_path / "got", max_size=max_size
    )
    # whole arrays: the composite, the classes, the cloudiest measured date (0.5 -> index 1)
    composite = np.asarray(store.array("composite")[:])
    classes = provenance_classes(
        np.asarray(store.array("provenance")[:]), np.isfinite(composite[0])
    )
    before = np.asarray(ds["s2"].isel(time=1).values, np.float32) / 10_000
    want = write_quicklook(
        before, composite, list(store.spec.bands), tmp_path / "want" / "q.png",
        max_size=max_size, provenance=classes[None],
    )  # fmt: skip
    assert got.read_bytes() == want.read_bytes()
    shares = [np.count_nonzero(classes == k + 1) for k in range(3)]
    assert report["overall"] == {
        n: round(c / sum(shares), 4) for n, c in zip(PROVENANCE, shares, strict=True)
    }
    assert 0 < report["overall"]["generated"] < 1 and report["overall"]["observed"] > 0
    for tile in store.spec.plan:
        part = classes[tile.window]
        share = np.count_nonzero(part == 3) / max(np.count_nonzero(part >= 1), 1)
        assert report["generated_per_tile"][f"{tile.y0},{tile.x0}"] == round(share, 4)


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
    selection = _selection(open_cube(tmp_path / "cube.zarr")["time"].values)
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


def _cube_and_store(tmp_path: Path, scenes: dict[str, pystac.Item]):  # -> (cube path, store)
    cube = load_cube(
        [scenes["d0a"], scenes["d1"], scenes["d2"]], None, bbox=inner_bbox(600), s2_assets=RGB,
        chunks=32,
    )  # fmt: skip
    write_cube(cube, tmp_path / "cube.zarr", region_size=64)
    return tmp_path / "cube.zarr", _store(tmp_path, tmp_path / "cube.zarr")


def test_write_products_makes_its_folder(tmp_path: Path, scenes: dict[str, pystac.Item]) -> None:
    """The quicklook is written first now; the folder must exist before it (it did not)."""
    from clearcube.pipeline.products import write_products

    cube_path, store = _cube_and_store(tmp_path, scenes)
    selection = _selection(open_cube(cube_path)["time"].values)
    out = tmp_path / "new" / "run"
    products = write_products(
        store, cube_path, selection, out, start="2024-05-01", end="2024-07-31", tags={},
        progress=lambda stage, done, total: None,
    )  # fmt: skip
    assert products.quicklook.parent == out and products.quicklook.stat().st_size > 0
    assert products.composite.exists() and products.item_path.exists()


def test_a_store_from_another_grid_is_refused(
    tmp_path: Path, scenes: dict[str, pystac.Item]
) -> None:
    """Decimated panels cannot tell a 1-px grid difference; the full shapes are compared first."""
    from clearcube.errors import BadInputError
    from clearcube.pipeline.products import _quicklook_and_report

    cube_path, _ = _cube_and_store(tmp_path, scenes)
    other = load_cube(
        [scenes["d0a"], scenes["d1"], scenes["d2"]], None, bbox=inner_bbox(590), s2_assets=RGB,
        chunks=32,
    )  # fmt: skip
    (tmp_path / "o").mkdir()
    write_cube(other, tmp_path / "o" / "cube.zarr", region_size=64)
    store = _store(tmp_path / "o", tmp_path / "o" / "cube.zarr")
    assert store.array("composite").shape != open_cube(cube_path)["s2"].shape[1:]
    selection = _selection(open_cube(cube_path)["time"].values)
    with pytest.raises(BadInputError, match="differ; make the mosaic store from this cube"):
        _quicklook_and_report(store, cube_path, selection, tmp_path, max_size=8)

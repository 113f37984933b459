"""Mosaic store: equals the in-memory blend, resumes after a crash, refuses another run's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mosaic_oracle import assemble, blend_tiles, fill_mosaic

from clearcube.errors import BadInputError, ClearcubeError
from clearcube.fingerprint import fingerprint
from clearcube.pipeline.mosaic import MosaicSpec, open_mosaic
from clearcube.pipeline.tiles import Tile, plan_tiles

PLAN = plan_tiles(150, 190, tile=64, overlap=16)
BANDS = ("B02", "B03", "B04")


def _spec(**run_args: object) -> MosaicSpec:
    return MosaicSpec(
        plan=PLAN,
        bands=BANDS,
        fingerprint=fingerprint({"sampler": "ddim", **run_args}),
        chunk=48,
        crs="EPSG:32633",
        transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 5100000.0),
    )


def _tile_products(tile: Tile) -> dict[str, np.ndarray]:
    """Deterministic per-tile values that differ between overlapping tiles."""
    rng = np.random.default_rng(PLAN.number(tile))
    shape = (len(BANDS), *PLAN.tile_shape)
    return {"composite": rng.uniform(0, 1, shape), "uncertainty": rng.uniform(0, 0.1, shape)}


class Crash(RuntimeError):
    pass


def test_assembled_store_equals_in_memory_blend(tmp_path: Path) -> None:
    store = open_mosaic(tmp_path / "m.zarr", _spec())
    assert fill_mosaic(store, _tile_products) == len(PLAN)
    assemble(store)
    assert store.complete
    for name in ("composite", "uncertainty"):
        expected = blend_tiles(PLAN, {t: _tile_products(t)[name] for t in PLAN})
        np.testing.assert_allclose(store.array(name)[:], expected, atol=1e-6)


def test_windows_other_than_the_output_chunks_assemble_the_same_values(tmp_path: Path) -> None:
    """Output chunks are written whole off zarr; any other window through zarr: one result."""
    chunks, other = (open_mosaic(tmp_path / f"{n}.zarr", _spec()) for n in ("a", "b"))
    for store in (chunks, other):
        fill_mosaic(store, _tile_products)
    assemble(chunks)  # 48 px windows, the store's chunks: 4 x 4 of them, the last ones cut
    for rows in (slice(0, 70), slice(70, 150)):
        for cols in (slice(0, 100), slice(100, 190)):
            other.assemble_window(rows, cols)
    for name in ("composite", "uncertainty"):
        np.testing.assert_array_equal(chunks.array(name)[:], other.array(name)[:])
        assert np.isfinite(chunks.array(name)[:]).all()


def test_interrupted_run_resumes_and_computes_only_the_rest(tmp_path: Path) -> None:
    k, calls = 7, []

    def crashing(tile: Tile) -> dict[str, np.ndarray]:
        if len(calls) == k:
            raise Crash
        calls.append(tile)
        return _tile_products(tile)

    with pytest.raises(Crash):
        fill_mosaic(open_mosaic(tmp_path / "m.zarr", _spec()), crashing)
    store = open_mosaic(tmp_path / "m.zarr", _spec())  # the rerun, same arguments
    assert store.done().sum() == k
    with pytest.raises(ClearcubeError):
        store.assemble_window(slice(0, 150), slice(0, 190))  # tiles missing: refused, not blended
    recomputed: list[Tile] = []
    assert fill_mosaic(store, lambda t: recomputed.append(t) or _tile_products(t)) == len(PLAN) - k
    assert set(recomputed).isdisjoint(calls) and len(set(recomputed) | set(calls)) == len(PLAN)
    assemble(store)
    expected = blend_tiles(PLAN, {t: _tile_products(t)["composite"] for t in PLAN})
    np.testing.assert_allclose(store.array("composite")[:], expected, atol=1e-6)


def test_another_runs_folder_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "m.zarr"
    store = open_mosaic(path, _spec())
    fill_mosaic(store, _tile_products)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with pytest.raises(BadInputError, match="another run"):
        open_mosaic(path, _spec(steps=10))
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before


def test_folder_with_foreign_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not a clearcube mosaic"):
        open_mosaic(tmp_path, _spec())
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_store_handle_round_trips_spec_and_checks_tile_shapes(tmp_path: Path) -> None:
    store = open_mosaic(tmp_path / "m.zarr", _spec())
    assert MosaicSpec.from_json(store.spec.to_json()) == store.spec
    with pytest.raises(BadInputError, match="shape"):
        store.write_tile(
            PLAN[0], {"composite": np.zeros((3, 5, 5)), "uncertainty": np.zeros((3, 5, 5))}
        )
    assert not store.done().any()


def test_output_windows_tile_the_grid_exactly(tmp_path: Path) -> None:
    store = open_mosaic(tmp_path / "m.zarr", _spec())
    count = np.zeros((PLAN.height, PLAN.width), dtype=int)
    for rows, cols in store.output_windows():
        count[rows, cols] += 1
    assert np.all(count == 1)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(1, 90), st.integers(1, 90), st.integers(4, 40), st.data(), st.integers(5, 70))
def test_store_assembly_equals_blend_for_any_plan_and_chunking(
    tmp_path_factory: pytest.TempPathFactory,
    height: int,
    width: int,
    tile: int,
    data: st.DataObject,
    chunk: int,
) -> None:
    plan = plan_tiles(height, width, tile=tile, overlap=data.draw(st.integers(0, tile - 1)))
    spec = MosaicSpec(
        plan=plan, bands=("b",), fingerprint="p", products=("composite",), chunk=chunk
    )
    store = open_mosaic(tmp_path_factory.mktemp("m") / "m.zarr", spec)
    rng = np.random.default_rng(height * 1000 + width)
    tiles = {t: rng.normal(size=(1, *plan.tile_shape)) for t in plan}
    fill_mosaic(store, lambda t: {"composite": tiles[t]})
    assemble(store)
    np.testing.assert_allclose(store.array("composite")[:], blend_tiles(plan, tiles), atol=1e-5)


def test_a_crash_while_creating_the_store_leaves_nothing_a_rerun_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creation happens in a hidden temporary folder; only a finished store is renamed in place."""
    import clearcube.pipeline.mosaic as mosaic_mod

    plan = plan_tiles(40, 40, tile=16, overlap=4)
    spec = MosaicSpec(plan=plan, bands=("B02",), fingerprint="run-a")
    real_create = mosaic_mod._create

    def crash(path: Path, spec: MosaicSpec) -> None:
        real_create(path, spec)
        raise OSError("disk full")

    monkeypatch.setattr(mosaic_mod, "_create", crash)
    with pytest.raises(OSError, match="disk full"):
        open_mosaic(tmp_path / "mosaic.zarr", spec)
    assert not (tmp_path / "mosaic.zarr").exists()
    monkeypatch.setattr(mosaic_mod, "_create", real_create)
    store = open_mosaic(tmp_path / "mosaic.zarr", spec)  # the rerun creates it cleanly
    assert len(store.pending()) == len(plan)


def test_tile_clear_fractions_survive_a_reopen_so_a_resume_reports_them(tmp_path: Path) -> None:
    """A resumed run counts tiles without a clear pixel from the store, not from its own tasks."""
    store = open_mosaic(tmp_path / "m.zarr", _spec())
    tiles = list(store.spec.plan)
    for tile, clear in zip(tiles[:3], (0.0, 0.5, 0.0), strict=True):
        store.write_tile(tile, _tile_products(tile), clear_fraction=clear)
    reopened = open_mosaic(tmp_path / "m.zarr", _spec())  # the rerun
    got = reopened.clear_fractions()
    np.testing.assert_array_equal(got[:3], [0.0, 0.5, 0.0])
    assert np.isnan(got[3:]).all()  # not computed yet
    assert [t.index for t in reopened.pending()] == [t.index for t in tiles[3:]]


def _write_every_other_tile(path: str, start: int) -> None:
    """One of two concurrent writers (a worker process): tiles ``start``, ``start + 2``, ..."""
    store = open_mosaic(path, _many_tiles_spec())
    for tile in list(store.spec.plan)[start::2]:
        number = store.spec.plan.number(tile)
        products = {
            name: np.full((len(BANDS), *store.spec.plan.tile_shape), number, np.float32)
            for name in store.spec.products
        }
        store.write_tile(tile, products, clear_fraction=number / len(store.spec.plan))


def _many_tiles_spec() -> MosaicSpec:
    return MosaicSpec(
        plan=plan_tiles(320, 320, tile=16, overlap=4),
        bands=BANDS,
        fingerprint=fingerprint({"sampler": "ddim"}),
        chunk=64,
        crs="EPSG:32633",
        transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 5100000.0),
    )


def test_concurrent_workers_lose_no_tile_clear_fraction(tmp_path: Path) -> None:
    """Two processes write interleaved tiles at once, as two workers do: every record survives.

    With one Zarr chunk for all tiles' clear fractions, each write rewrote the whole chunk and
    the other process's concurrent writes were lost (hundreds of 729 here).
    """
    import multiprocessing

    path = str(tmp_path / "m.zarr")
    store = open_mosaic(path, _many_tiles_spec())
    n = len(store.spec.plan)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_every_other_tile, args=(path, k)) for k in (0, 1)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        if w.is_alive():
            w.kill()
        assert w.exitcode == 0
    expected = (np.arange(n) / n).astype(np.float32)  # stored as float32
    np.testing.assert_array_equal(store.clear_fractions(), expected)
    assert store.done().all()


def test_a_write_into_a_deleted_store_fails_and_leaves_nothing(tmp_path: Path) -> None:
    """A task still writing after the user deleted the run's folder must not rebuild half a store.

    The process keeps its arrays' handles between tiles; they must not outlive the store.
    """
    import shutil

    path = tmp_path / "m.zarr"
    store = open_mosaic(path, _spec())
    tiles = list(store.spec.plan)
    store.write_tile(tiles[0], _tile_products(tiles[0]), clear_fraction=0.5)  # handles opened
    shutil.rmtree(path)
    with pytest.raises(FileNotFoundError):
        store.write_tile(tiles[1], _tile_products(tiles[1]), clear_fraction=0.5)
    assert not path.exists()
    remade = open_mosaic(path, _spec())  # made again at the same path: written, not skipped
    remade.write_tile(tiles[1], _tile_products(tiles[1]), clear_fraction=0.25)
    assert remade.done()[remade.spec.plan.number(tiles[1])]
    assert remade.clear_fractions()[remade.spec.plan.number(tiles[1])] == 0.25

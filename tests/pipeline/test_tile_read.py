"""The inference task's tile read: dates chosen from the stored masks, bands read for those only.

The oracle is the read this replaced, done here with xarray on the whole cube: every
candidate's 13 bands and SAR, ``known = ~cloud & (every band > 0)``, the greedy choice over
that, then the chosen dates sliced out.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from region_fixtures import PERIOD

from clearcube import CUBE_MASK_ATTR
from clearcube.pipeline.cube import open_cube
from clearcube.pipeline.cube_masks import CLOUD_BIT, VALID_ATTR, VALID_BIT, mask_and_choose
from clearcube.pipeline.dates import choose_tile_dates, first_clear
from clearcube.pipeline.inference import read_tile_inputs, read_tiles_inputs
from clearcube.pipeline.masking import MaskRequest
from clearcube.pipeline.tiles import plan_tiles


def _masked_dates(cube_path: Path) -> list[int]:
    attrs = dict(zarr.open_group(cube_path, mode="r").attrs)
    return sorted({int(i) for dates in dict(attrs[CUBE_MASK_ATTR]).values() for i in dates})


def _oracle_valid(cube_path: Path) -> np.ndarray:
    return np.asarray((open_cube(cube_path)["s2"].values > 0).all(axis=1))


def _check_state(cube_path: Path, masked: list[int]) -> None:
    """The stored state bits of ``masked``: validity from the bands, cloud as the cube's mask."""
    cube = open_cube(cube_path)
    state = np.asarray(cube["mask_state"].values)[masked]
    np.testing.assert_array_equal((state & VALID_BIT) > 0, _oracle_valid(cube_path)[masked])
    np.testing.assert_array_equal((state & CLOUD_BIT) > 0, cube["cloud"].values[masked])
    assert not (state & ~np.uint8(VALID_BIT | CLOUD_BIT)).any()  # no other bits


def test_mask_stage_records_validity_with_nodata(holed_cube: Path) -> None:
    masked = _masked_dates(holed_cube)
    assert not _oracle_valid(holed_cube)[masked].all(), "the fixture holds nodata"
    _check_state(holed_cube, masked)


def test_mask_stage_records_each_masked_dates_validity(reference_run: Any) -> None:
    cube_path = reference_run.out_dir / "cube.zarr"
    group = zarr.open_group(cube_path, mode="r")
    masked = _masked_dates(cube_path)
    assert masked, "the reference run masked its dates"
    assert sorted(group.attrs[VALID_ATTR]) == masked  # type: ignore[arg-type]
    _check_state(cube_path, masked)


def _copy_cube(reference_run: Any, tmp_path: Path) -> Path:
    dest = tmp_path / "cube.zarr"
    shutil.copytree(reference_run.out_dir / "cube.zarr", dest)
    return dest


def _remask(cube_path: Path) -> None:
    """The mask stage again, with the reference run's route and period (its masks are stored)."""
    mask_and_choose(
        cube_path, MaskRequest(), start=PERIOD[0], end=PERIOD[1], target=None, fuse=2,
        progress=lambda done, total: None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def holed_cube(reference_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference cube with nodata: one band zeroed on date 0, every band on date 1.

    The fixture scenes cover the whole region, so without this every pixel would be valid; the
    two holes overlap, so some pixels are covered by neither date.
    """
    cube_path = _copy_cube(reference_run, tmp_path_factory.mktemp("holed"))
    shutil.rmtree(cube_path / "mask_state")
    group = zarr.open_group(cube_path, mode="r+")
    del group.attrs[VALID_ATTR]
    s2 = zarr.open_array(cube_path / "s2", mode="r+")
    s2[0, 3, 10:40, 20:90] = 0
    s2[1, :, 20:113, 0:30] = 0
    _remask(cube_path)
    return cube_path


@pytest.mark.parametrize("max_dates", [1, 2])
@pytest.mark.parametrize("order", ["as stored", "reversed"])
@pytest.mark.parametrize("which", ["reference", "with nodata"])
def test_tile_read_equals_reading_every_candidate(
    reference_run: Any, holed_cube: Path, which: str, max_dates: int, order: str
) -> None:
    cube_path = holed_cube if which == "with nodata" else reference_run.out_dir / "cube.zarr"
    candidates = _masked_dates(cube_path)
    if order == "reversed":
        candidates = candidates[::-1]
    if which == "with nodata":
        valid_all = (open_cube(cube_path)["s2"].values[candidates] > 0).all(axis=1)
        assert not valid_all.all() and not valid_all.any(axis=0).all(), "nodata, some uncovered"
    _assert_reads_equal_every_candidates(cube_path, candidates, max_dates)


def _assert_reads_equal_every_candidates(
    cube_path: Path, candidates: list[int], max_dates: int
) -> None:
    """Every tile (48 px, partial edge tiles) against an xarray read of every candidate."""
    cube = open_cube(cube_path)
    s2_all = cube["s2"].values[candidates]
    s1_all = cube["s1"].values[candidates].astype(np.float32)
    cloud_all = cube["cloud"].values[candidates].astype(bool)
    plan = plan_tiles(cube.sizes["y"], cube.sizes["x"], tile=48, overlap=8)
    for tile in plan:
        rows, cols = tile.window
        s2, s1 = s2_all[:, :, rows, cols], s1_all[:, :, rows, cols]
        valid = (s2 > 0).all(axis=1)
        known = valid & ~cloud_all[:, rows, cols]
        expected = list(choose_tile_dates(known, max_dates=max_dates))

        picked, inputs, covered = read_tile_inputs(
            str(cube_path), tile, tuple(candidates), max_dates=max_dates
        )

        assert list(picked) == expected, tile
        assert inputs.s2.dtype == s2.dtype and inputs.tile == tile
        np.testing.assert_array_equal(inputs.s2, s2[expected])
        np.testing.assert_array_equal(inputs.s1, s1[expected])
        np.testing.assert_array_equal(inputs.known, first_clear(known[expected]))
        np.testing.assert_array_equal(covered, valid.any(axis=0))


def test_tile_read_refuses_dates_whose_validity_is_not_recorded(
    reference_run: Any, tmp_path: Path
) -> None:
    cube_path = _copy_cube(reference_run, tmp_path)
    group = zarr.open_group(cube_path, mode="r+")
    recorded = list(group.attrs[VALID_ATTR])  # type: ignore[arg-type]
    group.attrs[VALID_ATTR] = recorded[1:]
    tile = plan_tiles(*open_cube(cube_path)["s2"].shape[-2:], tile=48, overlap=8)[0]
    with pytest.raises(ValueError, match=rf"dates \[{recorded[0]}\] have no recorded validity"):
        read_tile_inputs(str(cube_path), tile, tuple(recorded), max_dates=2)


def test_mask_stage_records_validity_in_a_cube_masked_without_it(
    reference_run: Any, tmp_path: Path
) -> None:
    """A cube masked before ``mask_state`` existed (or after a crash before it was written)."""
    cube_path = _copy_cube(reference_run, tmp_path)
    shutil.rmtree(cube_path / "mask_state")
    group = zarr.open_group(cube_path, mode="r+")
    del group.attrs[VALID_ATTR]
    masked_before = dict(group.attrs[CUBE_MASK_ATTR])  # type: ignore[arg-type]
    mask_and_choose(
        cube_path,
        MaskRequest(),
        start=PERIOD[0],
        end=PERIOD[1],
        target=None,
        fuse=2,
        progress=lambda done, total: None,
    )  # fmt: skip  (the reference run's route and period: its masks are found stored)
    attrs = dict(zarr.open_group(cube_path, mode="r").attrs)
    assert attrs[CUBE_MASK_ATTR] == masked_before  # the masks themselves were reused
    masked = _masked_dates(cube_path)
    assert sorted(attrs[VALID_ATTR]) == masked  # type: ignore[arg-type]
    _check_state(cube_path, masked)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("which", ["reference", "with nodata"])
def test_tiles_read_together_equal_each_read_alone(
    reference_run: Any, holed_cube: Path, which: str, threads: int
) -> None:
    """A batch shares windows between neighbours: every tile still gets exactly its own read."""
    cube_path = str(holed_cube if which == "with nodata" else reference_run.out_dir / "cube.zarr")
    candidates = tuple(_masked_dates(Path(cube_path))[::-1])
    plan = plan_tiles(*open_cube(cube_path)["s2"].shape[-2:], tile=48, overlap=8)
    tiles = list(plan)
    # the whole plan (rows of touching tiles), every other tile (gaps), a reversed subset
    for batch in (tiles, tiles[::2], tiles[5:1:-1]):
        together = read_tiles_inputs(cube_path, batch, candidates, max_dates=2, threads=threads)
        assert len(together) == len(batch)
        for tile, (picked, inputs, covered) in zip(batch, together, strict=True):
            alone_picked, alone, alone_covered = read_tile_inputs(
                cube_path, tile, candidates, max_dates=2
            )
            assert picked == alone_picked and inputs.tile == tile
            np.testing.assert_array_equal(inputs.s2, alone.s2)
            np.testing.assert_array_equal(inputs.s1, alone.s1)
            np.testing.assert_array_equal(inputs.known, alone.known)
            np.testing.assert_array_equal(covered, alone_covered)


def test_the_state_follows_a_cloud_mask_written_again(reference_run: Any, tmp_path: Path) -> None:
    """A date masked again (another route) changes ``cloud``; the next mask stage's pass the bits."""
    cube_path = _copy_cube(reference_run, tmp_path)
    cloud = zarr.open_array(cube_path / "cloud", mode="r+")
    cloud[0] = ~np.asarray(cloud[0], dtype=bool)
    _remask(cube_path)
    _check_state(cube_path, _masked_dates(cube_path))


def test_state_chunked_by_fewer_dates_than_the_cube_holds(
    reference_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long period's cube: the dates of ``mask_state`` span several chunks along time."""
    import clearcube.pipeline.cube_masks as cube_masks

    cube_path = _copy_cube(reference_run, tmp_path)
    shutil.rmtree(cube_path / "mask_state")
    del zarr.open_group(cube_path, mode="r+").attrs[VALID_ATTR]
    monkeypatch.setattr(cube_masks, "STATE_DATES", 1)
    _remask(cube_path)
    assert zarr.open_array(cube_path / "mask_state", mode="r").chunks[0] == 1
    masked = _masked_dates(cube_path)
    assert len(masked) >= 2, "the dates fall in two chunks"
    _check_state(cube_path, masked)
    _remask(cube_path)  # again, now from the recorded state
    _check_state(cube_path, masked)
    _assert_reads_equal_every_candidates(cube_path, masked, max_dates=2)

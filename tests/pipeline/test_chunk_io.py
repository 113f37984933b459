"""clearcube's own chunk reads and writes agree with zarr's, for every layout they take on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from clearcube.pipeline import chunk_io

# (dtype, fill, compressors): the cube's and the store's layouts and a few more
LAYOUTS: list[tuple[str, Any, Any]] = [
    ("uint16", 0, (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)),  # cube s2
    ("float32", np.nan, (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)),  # cube s1
    ("uint8", 0, (ZstdCodec(level=0),)),  # mask_state
    ("bool", False, (ZstdCodec(level=3),)),  # cloud
    ("float32", np.nan, None),  # tile_clear
    ("bool", False, None),  # tile_done
    ("int64", -7, (BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),)),
    ("float64", 1.5, (BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle"),)),
]


def _array(
    path: Path, dtype: str, fill: Any, compressors: Any
) -> tuple[zarr.Array[Any], np.ndarray]:
    """A 4-d array with edge chunks and some chunks never written, and what it holds."""
    shape, chunks = (5, 3, 37, 41), (2, 3, 16, 16)
    rng = np.random.default_rng(abs(hash(dtype)) % 1000)
    values = (rng.random(shape) * 1000).astype(dtype)
    a = zarr.create_array(
        path, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, compressors=compressors
    )
    expected = np.full(shape, fill, dtype=dtype)
    for t in (0, 1, 4):  # dates 2 and 3 never written: their chunks are missing
        a[t, :, :30] = values[t, :, :30]
        expected[t, :, :30] = values[t, :, :30]
    assert not (path / "c" / "1").exists()  # chunk row of dates 2-3: missing for real
    return a, expected


def _selections(shape: tuple[int, ...], rng: np.random.Generator) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for _ in range(60):
        sel: list[Any] = []
        for n in shape:
            kind = rng.integers(4)
            if kind == 0:
                start = int(rng.integers(0, n))
                sel.append(slice(start, int(rng.integers(start, n + 1))))
            elif kind == 1:
                sel.append(int(rng.integers(-n, n)))
            elif kind == 2:  # any order, repeats
                sel.append(rng.integers(0, n, size=int(rng.integers(1, 6))))
            else:
                sel.append(slice(None))
        out.append(tuple(sel[: int(rng.integers(1, len(shape) + 1))]))
    out += [(slice(3, 3),), (np.array([], dtype=np.int64),), (-1, slice(None), slice(30, 37))]
    return out


@pytest.mark.parametrize(("dtype", "fill", "compressors"), LAYOUTS)
def test_reads_equal_zarrs_for_every_selection(
    tmp_path: Path, dtype: str, fill: Any, compressors: Any
) -> None:
    a, expected = _array(tmp_path / "a.zarr", dtype, fill, compressors)
    assert chunk_io.layout(str(tmp_path / "a.zarr")) is not None  # read by this module
    for sel in _selections(a.shape, np.random.default_rng(0)):
        want = a.get_orthogonal_selection(sel)
        got = chunk_io.read(str(tmp_path / "a.zarr"), sel)
        assert got.dtype == want.dtype and got.shape == want.shape, sel
        np.testing.assert_array_equal(got, want, err_msg=str(sel))
    np.testing.assert_array_equal(chunk_io.read(str(tmp_path / "a.zarr"), ()), expected)


@pytest.mark.parametrize(("dtype", "fill", "compressors"), LAYOUTS)
def test_written_chunks_are_what_zarr_reads_back(
    tmp_path: Path, dtype: str, fill: Any, compressors: Any
) -> None:
    path = str(tmp_path / "a.zarr")
    a, expected = _array(tmp_path / "a.zarr", dtype, fill, compressors)
    rng = np.random.default_rng(1)
    for index in [(0, 0, 0, 0), (1, 0, 2, 2), (2, 0, 1, 1)]:  # an edge chunk; a missing one
        block = (rng.random(a.chunks) * 1000).astype(dtype)
        chunk_io.write_chunk(path, index, block)
        region = tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(index, a.chunks, a.shape, strict=True)
        )
        expected[region] = block[tuple(slice(0, r.stop - r.start) for r in region)]
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], expected)
    assert not list(tmp_path.rglob("*.partial"))  # renamed into place, nothing left over


def test_layouts_it_does_not_know_go_through_zarr(tmp_path: Path) -> None:
    """Another codec or sharding: read and written by zarr, with the same results."""
    gzip = zarr.create_array(
        tmp_path / "gzip.zarr", shape=(8, 8), chunks=(4, 4), dtype="int32",
        compressors=(GzipCodec(),),
    )  # fmt: skip
    sharded = zarr.create_array(
        tmp_path / "sharded.zarr", shape=(8, 8), chunks=(2, 2), shards=(4, 4), dtype="int32"
    )
    for a, name in [(gzip, "gzip.zarr"), (sharded, "sharded.zarr")]:
        path = str(tmp_path / name)
        a[...] = np.arange(64, dtype=np.int32).reshape(8, 8)
        assert chunk_io.layout(path) is None
        np.testing.assert_array_equal(chunk_io.read(path, (np.array([5, 1]), slice(2, 7))),
                                      a.get_orthogonal_selection((np.array([5, 1]), slice(2, 7))))  # fmt: skip
        chunk_io.write_chunk(path, (1, 0), np.full(a.chunks, -1, dtype=np.int32))
        region = (slice(a.chunks[0], 2 * a.chunks[0]), slice(0, a.chunks[1]))
        assert (zarr.open_array(path, mode="r")[region] == -1).all()
    assert chunk_io.layout(str(tmp_path / "nothing.zarr")) is None


def test_an_element_of_a_shared_chunk_keeps_its_neighbours(tmp_path: Path) -> None:
    """``tile_clear`` of a store made before session 15: one chunk for every tile."""
    path = str(tmp_path / "clear.zarr")
    a = zarr.create_array(path, shape=(6,), chunks=(6,), dtype="float32", fill_value=np.nan)
    a[...] = np.arange(6, dtype=np.float32)
    chunk_io.write_element(path, (4,), 0.25)
    np.testing.assert_array_equal(a[...], [0, 1, 2, 3, 0.25, 5])
    own = str(tmp_path / "done.zarr")
    done = zarr.create_array(own, shape=(6,), chunks=(1,), dtype="bool", fill_value=False)
    chunk_io.write_element(own, (2,), True)
    np.testing.assert_array_equal(done[...], [False, False, True, False, False, False])


def test_an_array_made_again_at_the_same_path_is_read_as_it_is_now(tmp_path: Path) -> None:
    path = str(tmp_path / "a.zarr")
    zarr.create_array(path, shape=(4,), chunks=(2,), dtype="uint8")[...] = 7
    assert chunk_io.read(path, ()).tolist() == [7, 7, 7, 7]
    again = zarr.create_array(path, shape=(4,), chunks=(4,), dtype="float32", overwrite=True)
    again[...] = 0.5
    got = chunk_io.read(path, ())
    assert got.dtype == np.float32 and got.tolist() == [0.5] * 4


def test_an_index_outside_the_array_is_refused_as_zarr_refuses_it(tmp_path: Path) -> None:
    path = str(tmp_path / "a.zarr")
    zarr.create_array(path, shape=(4, 4), chunks=(2, 2), dtype="uint8")
    for sel in [(4,), (-5,), (np.array([0, 4]),)]:
        with pytest.raises(IndexError):
            chunk_io.read(path, sel)
        with pytest.raises(IndexError):
            zarr.open_array(path, mode="r").get_orthogonal_selection(sel)

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
        region = tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(index, a.chunks, a.shape, strict=True)
        )
        block = (rng.random(tuple(r.stop - r.start for r in region)) * 1000).astype(dtype)
        chunk_io.write_chunk(path, index, block)  # the chunk's part inside the array
        expected[region] = block
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


def test_both_write_paths_take_the_same_data_and_refuse_chunks_off_the_grid(tmp_path: Path) -> None:
    """Direct (zstd) and through zarr (gzip): an edge chunk's in-array part; no stray files."""
    zarr.create_array(tmp_path / "done.zarr", shape=(6,), chunks=(1,), dtype="bool")
    for codec in (ZstdCodec(level=0), GzipCodec()):
        path = str(tmp_path / f"{codec.__class__.__name__}.zarr")
        a = zarr.create_array(path, shape=(6, 5), chunks=(4, 4), dtype="int16", fill_value=-1,
                              compressors=(codec,))  # fmt: skip
        chunk_io.write_chunk(path, (1, 1), np.array([[7], [8]], dtype=np.int16))
        np.testing.assert_array_equal(a[4:, 4:], [[7], [8]])
        assert (a[:4, :4] == -1).all()
        for index in [(-1, 0), (2, 0), (0, 2), (0,)]:
            with pytest.raises(IndexError):
                chunk_io.write_chunk(path, index, np.zeros((4, 4), dtype=np.int16))
        with pytest.raises(IndexError):
            chunk_io.write_element(str(tmp_path / "done.zarr"), (-1,), True)
        assert sorted(p.name for p in Path(path, "c").iterdir()) == ["1"]


def test_a_selection_that_is_not_a_tuple_reads_as_zarr_reads_it(tmp_path: Path) -> None:
    path = str(tmp_path / "a.zarr")
    a = zarr.create_array(path, shape=(5, 4), chunks=(2, 2), dtype="uint8")
    a[...] = np.arange(20, dtype=np.uint8).reshape(5, 4)
    for sel in [[3, 1], np.array([4, 0, 4]), 2, -1, slice(1, 4)]:
        np.testing.assert_array_equal(chunk_io.read(path, sel), a.get_orthogonal_selection(sel))
    for bad in [(True,), (np.bool_(False),)]:
        with pytest.raises(IndexError):
            chunk_io.read(path, bad)


def test_metadata_rewritten_within_one_timestamp_tick_is_not_taken_for_the_old(
    tmp_path: Path,
) -> None:
    """Same inode, same mtime (a coarse-clock file system), other metadata: read as it is now."""
    import os

    from clearcube.pipeline.cube_store import array_handle

    old, new = str(tmp_path / "old.zarr"), str(tmp_path / "new.zarr")
    zarr.create_array(old, shape=(4,), chunks=(2,), dtype="uint8")[...] = 7
    zarr.create_array(new, shape=(4,), chunks=(4,), dtype="float32")[...] = 0.5
    assert chunk_io.read(old, ()).tolist() == [7] * 4 and array_handle(old).dtype == np.uint8
    meta = Path(old, "zarr.json")
    stat = meta.stat()
    with open(meta, "r+b") as f:  # in place: the inode stays
        f.write(Path(new, "zarr.json").read_bytes())
        f.truncate()
    for chunk in Path(new, "c").iterdir():
        os.replace(chunk, Path(old, "c", chunk.name))
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert meta.stat().st_ino == stat.st_ino and meta.stat().st_mtime_ns == stat.st_mtime_ns
    assert chunk_io.read(old, ()).tolist() == [0.5] * 4
    assert array_handle(old).dtype == np.float32

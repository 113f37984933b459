"""Zarr chunks of clearcube's own arrays read and written off the GIL, on the caller's thread.

zarr-python 3 runs every read and write of a process on one asyncio event-loop thread, so the
inference task's I/O threads did not overlap: a batch of 16 tile reads took 10.1 ms a tile on
one thread and 10.4 on two, while two processes took 6.6 (benchmarks/RESULTS.md, session 16).
The codecs themselves (numcodecs' Blosc and Zstd) release the GIL. For the arrays clearcube
writes itself (a local directory store, a regular chunk grid, default ``/`` chunk keys, the
``bytes`` codec and at most one of ``blosc`` / ``zstd``), this module decodes and encodes the
chunk files directly, on whichever thread calls it; any other array (another codec, sharding,
a remote store) goes through zarr unchanged. The format is Zarr v3's: a chunk is the file
``<array>/c/<i>/<j>/...`` holding the whole chunk's elements in C order (edge chunks too), and
a missing file reads as the fill value. A chunk is written to a temporary name and renamed, so
a reader never sees half of one.

``tests/pipeline/test_chunk_io.py`` checks every path against zarr's own reads and writes.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numcodecs import Blosc, Zstd
from numcodecs.abc import Codec

from clearcube.pipeline.cube_store import array_handle

Selection = tuple[Any, ...]

_SHUFFLE = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
_FILLS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class ChunkLayout:
    """What this module needs to know of one array, parsed from its ``zarr.json``."""

    path: str
    """The array's directory."""
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    """Little-endian element type."""
    fill: Any
    """What a missing chunk holds."""
    codec: Codec | None
    """The compressor after ``bytes`` (None: raw bytes)."""

    def key(self, index: tuple[int, ...]) -> str:
        """The file of the chunk at grid position ``index``."""
        return os.path.join(self.path, "c", *map(str, index))


def layout(path: str) -> ChunkLayout | None:
    """The array's layout when this module can read and write it itself, else None (use zarr).

    Parsed once per process per metadata text: the file (~1 KB) is read on every call, so an
    array made again at the same path is never read with the old one's layout.
    """
    try:
        with open(os.path.join(path, "zarr.json"), "rb") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _layout(path, text)


@functools.lru_cache(maxsize=64)
def _layout(path: str, text: bytes) -> ChunkLayout | None:
    meta = json.loads(text)
    grid, keys = meta.get("chunk_grid", {}), meta.get("chunk_key_encoding", {})
    supported = (
        meta.get("zarr_format") == 3
        and meta.get("node_type") == "array"
        and not meta.get("storage_transformers")
        and grid.get("name") == "regular"
        and keys.get("name") == "default"
        and keys.get("configuration", {}).get("separator", "/") == "/"
        and isinstance(meta.get("data_type"), str)
    )
    if not supported:
        return None
    try:
        dtype = np.dtype(meta["data_type"]).newbyteorder("<")
    except TypeError:
        return None
    if dtype.kind not in "biuf":
        return None
    codec = _codec(meta.get("codecs", []), dtype)
    if codec is False:
        return None
    fill = meta.get("fill_value")
    fill = _FILLS.get(fill, fill) if isinstance(fill, str) else fill
    if not isinstance(fill, (bool, int, float)):
        return None
    return ChunkLayout(
        path=path,
        shape=tuple(meta["shape"]),
        chunks=tuple(grid["configuration"]["chunk_shape"]),
        dtype=dtype,
        fill=fill,
        codec=codec,
    )


def _codec(codecs: list[dict[str, Any]], dtype: np.dtype[Any]) -> Codec | bool | None:
    """The numcodecs compressor of ``codecs``, None for raw bytes, False when unsupported."""
    if not codecs or codecs[0].get("name") != "bytes":
        return False
    endian = codecs[0].get("configuration", {}).get("endian", "little")
    if endian != "little" and dtype.itemsize > 1:
        return False
    rest = codecs[1:]
    if not rest:
        return None
    if len(rest) > 1:
        return False
    name, cfg = rest[0].get("name"), rest[0].get("configuration", {})
    if name == "zstd" and not cfg.get("checksum", False):
        return Zstd(level=int(cfg.get("level", 0)))
    if name == "blosc" and cfg.get("shuffle", "noshuffle") in _SHUFFLE:
        if int(cfg.get("typesize", dtype.itemsize)) != dtype.itemsize:
            return False
        return Blosc(
            cname=str(cfg.get("cname", "zstd")),
            clevel=int(cfg.get("clevel", 5)),
            shuffle=_SHUFFLE[cfg.get("shuffle", "noshuffle")],
            blocksize=int(cfg.get("blocksize", 0)),
        )
    return False


def read(path: str, selection: Selection) -> np.ndarray:
    """``zarr.open_array(path).get_orthogonal_selection(selection)``, decoded on this thread.

    Each entry of ``selection`` is an int (the axis is dropped), a slice of step 1, or a 1-D
    array of ints (any order, repeats allowed); missing trailing entries are whole axes.
    Arrays this module does not handle, and steps other than 1, are read by zarr.
    """
    if not isinstance(selection, tuple):
        selection = (selection,)
    spec = layout(path)
    axes = _axes(spec, selection) if spec is not None else None
    if spec is None or axes is None:
        return np.asarray(array_handle(path).get_orthogonal_selection(selection))
    out = np.empty(tuple(len(coords) for coords, _ in axes), dtype=spec.dtype)
    per_axis = [_groups(coords, size) for (coords, _), size in zip(axes, spec.chunks, strict=True)]
    for combo in itertools.product(*per_axis):
        index = tuple(chunk for chunk, _, _ in combo)
        target = _place([where for _, where, _ in combo])
        source = _place([offsets for _, _, offsets in combo])
        block = _chunk(spec, index)
        out[target] = spec.fill if block is None else block[source]
    squeeze = tuple(axis for axis, (_, drop) in enumerate(axes) if drop)
    return out.squeeze(axis=squeeze) if squeeze else out


def write_chunk(path: str, index: tuple[int, ...], data: np.ndarray) -> None:
    """Replace the whole chunk at grid position ``index`` with ``data``.

    ``data`` is the chunk's part inside the array (the chunk's shape but at the array's far
    edges; axes of length 1 may be left out). Encoded on this thread and renamed into place;
    arrays this module does not handle are written by zarr.
    """
    spec = layout(path)
    handle = array_handle(path, "r+") if spec is None else None
    shape = spec.shape if spec is not None else handle.shape  # type: ignore[union-attr]
    chunks = spec.chunks if spec is not None else handle.chunks  # type: ignore[union-attr]
    if len(index) != len(shape) or any(
        not 0 <= i < -(-n // c) for i, c, n in zip(index, chunks, shape, strict=True)
    ):
        raise IndexError(f"chunk {index} is outside the grid of {path} ({shape} in {chunks})")
    region = tuple(
        slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks, shape, strict=True)
    )
    values = np.asarray(data).reshape(tuple(r.stop - r.start for r in region))
    if spec is None:
        handle[region] = values  # type: ignore[index]
    else:
        _write_direct(spec, index, values)


def write_element(path: str, index: tuple[int, ...], value: Any) -> None:
    """Set one element; directly when it is a chunk of its own, else through zarr.

    The mosaic store's per-tile records are one element per chunk (stores made before session
    15 kept ``tile_clear`` in one chunk, and zarr's read-modify-write of it stays theirs).
    """
    spec = layout(path)
    if spec is not None and all(c == 1 for c in spec.chunks):
        if not all(0 <= i < n for i, n in zip(index, spec.shape, strict=True)):
            raise IndexError(f"element {index} is outside {path} of shape {spec.shape}")
        _write_direct(spec, index, np.asarray(value).reshape(spec.chunks))
    else:
        array_handle(path, "r+")[index] = value


def _write_direct(spec: ChunkLayout, index: tuple[int, ...], values: np.ndarray) -> None:
    """Encode the in-array part ``values`` of the chunk at ``index`` and rename it into place."""
    if values.shape == spec.chunks:
        block = np.ascontiguousarray(values, dtype=spec.dtype)
    else:  # an edge chunk is stored whole, the fill beyond the edge
        block = np.full(spec.chunks, spec.fill, dtype=spec.dtype)
        block[tuple(slice(0, n) for n in values.shape)] = values
    raw = block.tobytes() if spec.codec is None else spec.codec.encode(block)
    key = spec.key(index)
    os.makedirs(os.path.dirname(key), exist_ok=True)
    tmp = f"{key}.{os.getpid()}.{threading.get_ident()}.partial"
    with open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, key)


def _chunk(spec: ChunkLayout, index: tuple[int, ...]) -> np.ndarray | None:
    """The decoded chunk at ``index`` (its full chunk shape), None when it was never written."""
    try:
        with open(spec.key(index), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    data = raw if spec.codec is None else spec.codec.decode(raw)
    return np.frombuffer(data, dtype=spec.dtype).reshape(spec.chunks)


def _axes(spec: ChunkLayout, selection: Selection) -> list[tuple[np.ndarray, bool]] | None:
    """Per axis, the selected coordinates and whether the axis is dropped; None: not handled."""
    if len(selection) > len(spec.shape):
        raise IndexError(f"{len(selection)} indices for a {len(spec.shape)}-d array")
    full = tuple(selection) + (slice(None),) * (len(spec.shape) - len(selection))
    axes = []
    for sel, size in zip(full, spec.shape, strict=True):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(size)
            if step != 1:
                return None
            axes.append((np.arange(start, max(start, stop)), False))
        elif isinstance(sel, (bool, np.bool_)):
            return None  # zarr refuses it; do as it does
        elif isinstance(sel, (int, np.integer)):
            axes.append((_in_bounds(np.array([int(sel)]), size), True))
        else:
            coords = np.asarray(sel)
            if coords.ndim != 1 or coords.dtype.kind not in "iu":
                return None
            axes.append((_in_bounds(coords.astype(np.int64), size), False))
    return axes


def _in_bounds(coords: np.ndarray, size: int) -> np.ndarray:
    coords = np.where(coords < 0, coords + size, coords)
    if coords.size and (coords.min() < 0 or coords.max() >= size):
        raise IndexError(f"index out of bounds for an axis of size {size}")
    return coords


def _groups(
    coords: np.ndarray, size: int
) -> list[tuple[int, slice | np.ndarray, slice | np.ndarray]]:
    """Per chunk the axis touches: ``(chunk, positions in the output, offsets in the chunk)``.

    Runs of consecutive coordinates (every slice) come out as slices, so the copy is a plain
    strided one.
    """
    chunk_of = coords // size
    groups: list[tuple[int, slice | np.ndarray, slice | np.ndarray]] = []
    for chunk in dict.fromkeys(chunk_of.tolist()):
        where = np.flatnonzero(chunk_of == chunk)
        offsets = coords[where] - chunk * size
        consecutive = bool(np.all(np.diff(where) == 1) and np.all(np.diff(offsets) == 1))
        if consecutive:
            first, last = int(where[0]), int(offsets[0])
            groups.append((chunk, slice(first, first + where.size), slice(last, last + where.size)))
        else:
            groups.append((chunk, where, offsets))
    return groups


def _place(parts: list[slice | np.ndarray]) -> tuple[Any, ...]:
    """An index for ``parts``, one per axis: slices as they are, or an open mesh with arrays."""
    if all(isinstance(p, slice) for p in parts):
        return tuple(parts)
    return np.ix_(*(np.arange(p.start, p.stop) if isinstance(p, slice) else p for p in parts))

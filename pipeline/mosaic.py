"""The output Zarr v3 store of a composite, written tile by tile, resumable after a crash.

Write pattern (why no two writers ever touch the same chunk):

1. **Tile phase** (parallel, one task per tile). A worker multiplies its tile's products by the
   tile's blend weight (:func:`clearcube.pipeline.blend.weighted`) and writes them to the scratch
   arrays ``tiles/<product>`` of shape ``(n_tiles, band, h, w)``, chunked ``(1, band, h, w)``: one
   chunk per tile, keyed by the tile's number. Then it sets ``tile_done[n]`` (chunk ``(1,)``,
   uncompressed), its completion record. Zarr's local store writes every chunk through a
   temporary file and a rename, and the record is written only after the data, so a crash
   leaves either a finished tile or one that the rerun computes again.
2. **Assembly phase** (parallel, one task per output chunk). Each output chunk window of
   ``<product>`` ``(band, y, x)`` is the plain SUM of the pre-weighted tiles intersecting it (the
   weights form a partition of unity, so no division), written by exactly one task.

The alternative, adding tiles straight into the output chunks, would make neighbouring tiles
race on the chunks they share (read-modify-write), and would break resume: a chunk half-summed
before a crash cannot tell which tiles it already holds. The scratch costs about
``(tile / stride)²`` times the output size (1.3× for 256/32) and :meth:`MosaicStore.discard_scratch`
frees it once the products are assembled.

A store carries a fingerprint of the run arguments. Opening a folder that holds another run's
store (or anything else) raises :class:`BadInputError` and writes nothing; the same arguments
resume. Memory: a tile write holds one tile; an assembly task one output chunk (float64) plus
one tile at a time.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from affine import Affine

from clearcube.errors import BadInputError, ClearcubeError
from clearcube.fingerprint import fingerprint
from clearcube.pipeline import chunk_io
from clearcube.pipeline.blend import Taper, accumulate, weighted
from clearcube.pipeline.cube_store import CUBE_CODECS, open_cube
from clearcube.pipeline.provenance import PROVENANCE
from clearcube.pipeline.tiles import Tile, TilePlan, plan_tiles, window_grid

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["MosaicSpec", "MosaicStore", "assemble_on", "open_mosaic", "spec_for_cube"]

_ATTR = "clearcube:mosaic"


@dataclass(frozen=True)
class MosaicSpec:
    """What a mosaic store holds; stored in the store's attributes."""

    plan: TilePlan
    """The tile plan (grid shape, tile, overlap)."""
    bands: tuple[str, ...]
    """Band names of every product, e.g. ``("B01", ..., "B12")``."""
    fingerprint: str
    """:func:`fingerprint` of the run arguments; another value means another run."""
    products: tuple[str, ...] = ("composite", "uncertainty")
    """Products, each ``(band, y, x)`` float32."""
    layers: tuple[tuple[str, int], ...] = ()
    """Products whose band axis is not ``bands`` (e.g. ``("provenance", 3)``), with their count."""
    chunk: int = 512
    """Edge of the output chunks in y and x."""
    taper: Taper = "cosine"
    """Blend taper."""
    crs: str | None = None
    """CRS of the grid (WKT or ``EPSG:n``), for the COGs."""
    transform: tuple[float, ...] | None = None
    """Affine ``(a, b, c, d, e, f)`` of the grid (rasterio order), for the COGs."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the inverse of :meth:`from_json`)."""
        out = asdict(self)
        out["plan"] = {k: out["plan"][k] for k in ("height", "width", "tile", "overlap")}
        plain: dict[str, Any] = json.loads(json.dumps(out))  # tuples -> lists, as stored
        return plain

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MosaicSpec:
        """Rebuild a spec from :meth:`to_json` output."""
        fields = dict(data)
        fields["plan"] = TilePlan(**fields["plan"])
        fields["bands"] = tuple(fields["bands"])
        fields["products"] = tuple(fields["products"])
        fields["layers"] = tuple((str(n), int(k)) for n, k in fields.get("layers", ()))
        if fields.get("transform") is not None:
            fields["transform"] = tuple(fields["transform"])
        return cls(**fields)

    def band_count(self, product: str) -> int:
        """Length of ``product``'s band axis."""
        return dict(self.layers).get(product, len(self.bands))


@dataclass(frozen=True)
class MosaicStore:
    """A handle on an existing mosaic store; small and picklable, so tasks can carry it."""

    path: str
    """The store's folder."""
    spec: MosaicSpec
    """What it holds."""

    def _group(self, mode: str = "r+") -> zarr.Group:
        return zarr.open_group(self.path, mode=mode)  # type: ignore[arg-type]

    def _array(self, name: str, mode: str = "r+") -> zarr.Array[Any]:
        return zarr.open_array(f"{self.path}/{name}", mode=mode)

    def array(self, product: str) -> zarr.Array[Any]:
        """The assembled ``(band, y, x)`` array of ``product`` (slice it; do not load it whole)."""
        if product not in self.spec.products:
            raise BadInputError(f"no product {product!r}; this store holds {self.spec.products}")
        return self._array(product, "r")

    # -- tile phase ------------------------------------------------------------------------
    def done(self) -> np.ndarray:
        """``(n_tiles,)`` bool, True = the tile's contribution is stored."""
        return np.asarray(self._array("tile_done", "r")[:], dtype=bool)

    def pending(self) -> list[Tile]:
        """Tiles still to compute, in plan order."""
        done = self.done()
        return [tile for n, tile in enumerate(self.spec.plan) if not done[n]]

    def clear_fractions(self) -> np.ndarray:
        """``(n_tiles,)`` share of each tile's pixels clear on a fused date (NaN: not recorded)."""
        if "tile_clear" not in self._group("r"):
            return np.full(len(self.spec.plan), np.nan)
        return np.asarray(self._array("tile_clear", "r")[:], dtype=float)

    def write_tile(
        self, tile: Tile, products: Mapping[str, np.ndarray], clear_fraction: float | None = None
    ) -> None:
        """Store one tile's products ``{name: (band, h, w)}`` pre-weighted, then mark it done.

        ``clear_fraction`` is kept beside it, so a resumed run reports what an undisturbed one
        does (tiles without a clear pixel).
        """
        plan, spec = self.spec.plan, self.spec
        if set(products) != set(spec.products):
            raise BadInputError(
                f"tile products {sorted(products)} differ from {list(spec.products)}"
            )
        number = plan.number(tile)
        for name in spec.products:
            expected = (spec.band_count(name), *plan.tile_shape)
            data = np.asarray(products[name])
            if data.shape != expected:
                raise BadInputError(
                    f"tile {tile.index} {name} has shape {data.shape}, expected {expected}"
                )
            chunk_io.write_chunk(
                f"{self.path}/tiles/{name}",
                (number, 0, 0, 0),
                weighted(plan, tile, data, taper=spec.taper),
            )
        # tile_clear is absent from stores made before it existed
        if clear_fraction is not None and Path(self.path, "tile_clear").exists():
            chunk_io.write_element(f"{self.path}/tile_clear", (number,), float(clear_fraction))
        chunk_io.write_element(f"{self.path}/tile_done", (number,), True)  # the record comes last

    # -- assembly phase --------------------------------------------------------------------
    def output_windows(self) -> Iterator[tuple[slice, slice]]:
        """The output chunk windows ``(rows, cols)``, row-major: one assembly task each."""
        plan, chunk = self.spec.plan, self.spec.chunk
        yield from window_grid(plan.height, plan.width, chunk, chunk)

    def assemble_window(self, rows: slice, cols: slice) -> None:
        """Sum the pre-weighted tiles over one output window and write it to every product.

        A window of :meth:`output_windows` is one output chunk, written whole off zarr's event
        loop (:mod:`.chunk_io`); any other window goes through zarr.
        """
        plan, spec = self.spec.plan, self.spec
        tiles = plan.intersecting(rows, cols)
        numbers = np.array([plan.number(t) for t in tiles])
        done = np.asarray(
            self._array("tile_done", "r").get_coordinate_selection(numbers), dtype=bool
        )
        missing = [t.index for t, ok in zip(tiles, done, strict=True) if not ok]
        if missing:
            raise ClearcubeError(
                f"window rows {rows.start}:{rows.stop} cols {cols.start}:{cols.stop} still needs "
                f"{len(missing)} tiles (first {missing[0]}); finish the tile phase first"
            )
        c = spec.chunk
        whole = (rows.stop - rows.start, cols.stop - cols.start) == (
            min(c, plan.height - rows.start),
            min(c, plan.width - cols.start),
        ) and not (rows.start % c or cols.start % c)
        chunk = (0, rows.start // c, cols.start // c)
        for name in spec.products:
            shape = (spec.band_count(name), rows.stop - rows.start, cols.stop - cols.start)
            acc = np.zeros(shape, dtype=np.float64)
            for tile in tiles:
                data = chunk_io.read(f"{self.path}/tiles/{name}", (plan.number(tile),))
                accumulate(acc, None, data, tile, weight=None, origin=(rows.start, cols.start))
            if whole:
                chunk_io.write_chunk(f"{self.path}/{name}", chunk, acc.astype(np.float32))
            else:  # a window of another shape: zarr's read-modify-write of the chunks it meets
                self._array(name)[:, rows, cols] = acc.astype(np.float32)

    @property
    def complete(self) -> bool:
        """True once every product is assembled."""
        return bool(self._group("r").attrs[_ATTR].get("complete", False))  # type: ignore[union-attr]

    def mark_complete(self) -> None:
        """Record that every product is assembled (call once, from the orchestrator)."""
        group = self._group()
        record = dict(group.attrs[_ATTR])  # type: ignore[arg-type]
        record["complete"] = True
        group.attrs[_ATTR] = record

    def discard_scratch(self) -> None:
        """Delete the per-tile scratch arrays once the store is complete (frees ~1.3× the output)."""
        if not self.complete:
            raise ClearcubeError(
                f"{self.path} is not complete; assemble it before discarding tiles"
            )
        shutil.rmtree(Path(self.path) / "tiles", ignore_errors=True)


def _create(path: Path, spec: MosaicSpec) -> None:
    plan = spec.plan
    group = zarr.open_group(path, mode="w-", zarr_format=3)
    for name in spec.products:
        nb = spec.band_count(name)
        chunk = (nb, min(spec.chunk, plan.height), min(spec.chunk, plan.width))
        group.create_array(
            name,
            shape=(nb, plan.height, plan.width),
            chunks=chunk,
            dtype="float32",
            fill_value=np.nan,
            dimension_names=("band", "y", "x"),
        )
        # Each tile's scratch in LZ4 after a byte shuffle, as the cube: an inference task writes
        # a tile in 7 ms instead of zstd's 16 ms (13 bands of 256 px), the blend reads it in
        # 2.7 instead of 4.9 ms, for 0.58 instead of 0.53 of the raw size on disk
        # (benchmarks/RESULTS.md, session 15).
        group.create_array(
            f"tiles/{name}",
            shape=(len(plan), nb, *plan.tile_shape),
            chunks=(1, nb, *plan.tile_shape),
            dtype="float32",
            fill_value=0.0,
            compressors=CUBE_CODECS,
            dimension_names=("tile", "band", "y", "x"),
        )
    # One chunk per tile, as tile_done: workers write their tiles' records at the same time, and
    # with one chunk for all tiles each write rewrote the others' (records lost: test_mosaic.py).
    group.create_array(
        "tile_clear",
        shape=(len(plan),),
        chunks=(1,),
        dtype="float32",
        fill_value=np.nan,
        compressors=None,
        dimension_names=("tile",),
    )
    group.create_array(
        "tile_done",
        shape=(len(plan),),
        chunks=(1,),
        dtype="bool",
        fill_value=False,
        compressors=None,
        dimension_names=("tile",),
    )
    group.attrs[_ATTR] = {"spec": spec.to_json(), "complete": False}  # last: marks a usable store


def open_mosaic(path: str | Path, spec: MosaicSpec) -> MosaicStore:
    """Create the store at ``path``, or reopen it to resume when it holds the same run.

    Raises:
        BadInputError: when ``path`` holds another run's store or other files; nothing is
            written then.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{path} is a file, not a mosaic store folder; choose another --out")
    if not path.exists() or not any(path.iterdir()):
        # Built beside the target and renamed into place: a crash mid-creation leaves only a
        # hidden temporary folder, never a half-made store that a rerun would refuse.
        tmp = path.with_name(f".{path.name}.creating")
        shutil.rmtree(tmp, ignore_errors=True)
        _create(tmp, spec)
        if path.exists():
            path.rmdir()  # the empty folder checked above
        tmp.rename(path)
        return MosaicStore(str(path), spec)
    try:
        found = zarr.open_group(path, mode="r").attrs[_ATTR]["spec"]  # type: ignore[index,call-overload]
    except Exception as exc:
        raise BadInputError(
            f"{path} holds files that are not a clearcube mosaic; choose another --out or empty it"
        ) from exc
    if found != spec.to_json():
        other = found.get("fingerprint", "?") if isinstance(found, dict) else "?"
        raise BadInputError(
            f"{path} holds another run's mosaic (fingerprint {other}, this run {spec.fingerprint}); "
            "choose another --out or delete that folder"
        )
    return MosaicStore(str(path), spec)


def spec_for_cube(
    cube_path: Path, *, tile: int, overlap: int, uncertainty: bool, run: Mapping[str, Any]
) -> MosaicSpec:
    """The output store's layout over a cube's grid.

    Args:
        cube_path: the Zarr cube (its grid, bands, CRS and transform).
        tile: tile edge in pixels.
        overlap: overlap between neighbouring tiles.
        uncertainty: hold the spread of the samples too (K >= 2).
        run: what makes the tiles' values (model settings, dates); its fingerprint guards resume.
    """
    cube = open_cube(cube_path)
    # The cube stores the GDAL geotransform (c, a, b, f, d, e); the mosaic wants rasterio's order.
    transform = tuple(Affine.from_gdal(*(float(v) for v in cube.attrs["transform"])))[:6]
    products: tuple[str, ...] = ("composite", "provenance")
    if uncertainty:
        products += ("uncertainty",)
    return MosaicSpec(
        plan=plan_tiles(cube.sizes["y"], cube.sizes["x"], tile=tile, overlap=overlap),
        bands=tuple(str(b) for b in cube["band"].values),
        fingerprint=fingerprint(run),
        products=products,
        layers=(("provenance", len(PROVENANCE)),),
        crs=str(cube.attrs.get("crs")),
        transform=transform,
    )


def assemble_on(client: Client, store: MosaicStore, progress: Callable[[int, int], None]) -> None:
    """Assemble the output windows from the pre-weighted tiles, one Dask task per window."""
    if store.complete:
        return
    windows = list(store.output_windows())
    futures = client.map(_assemble_window, [store] * len(windows), windows, pure=False)
    for i, future in enumerate(futures):
        future.result()
        progress(i + 1, len(windows))
    store.mark_complete()


def _assemble_window(store: MosaicStore, window: tuple[slice, slice]) -> None:
    store.assemble_window(*window)

"""Reprojected reads whose values do not depend on the read window (issue 13).

odc-loader reprojects a source that does not paste onto the output grid with
``rasterio.warp.reproject`` and GDAL's defaults, and two of those make a pixel's value depend on
which output window it was read in:

- **the approximate transformer.** GDAL interpolates the source coordinates linearly across the
  window and refines only where the error passes 0.125 source pixels, so the same output pixel
  samples a slightly different source point in a different window;
- **the kernel scale.** For a resampling kernel wider than nearest, GDAL sizes the kernel from
  the ratio of the window's output size to its source size, which moves with the window too.

Sentinel-1 is the source this bites: it comes in another CRS and is read bilinearly, and its
values moved by up to 0.21 dB (p99) between 256 px and 1024 px reads of the demo cube. Here the
warp runs through a warped VRT in blocks of :data:`WARP_BLOCK` pixels placed on a lattice fixed by
the output grid's coordinates (:func:`warp_in_blocks`): GDAL approximates the transformer inside
each block (to :data:`BLOCK_TOLERANCE` source pixels), and the blocks are the same whatever window
is read. The kernel scale is fixed per source (:func:`kernel_scale`, measured at the source's
centre). So every output pixel is the same function of the source whatever window it is read in,
and Sentinel-1 can be read in the same 1024 px windows as Sentinel-2. (Transforming every pixel
exactly gives the same independence at four times the cost.)

Nearest reads that upsample by a whole factor onto an aligned grid (Sentinel-2's 20 and 60 m bands
onto the 10 m grid) are done here too, as a plain read of the source pixels repeated ``k`` times
along each axis (:func:`upsampled_read`): the same pixels GDAL's nearest warp gives (each output
pixel centre falls in exactly one source pixel), at a fifth of its cost (24 vs 5 ms per 1024 px
window of a 20 m band).

The same read with k = 1 pastes the 10 m bands: the file is opened once per read, here, instead
of once here and again in odc-loader.

Reads this module does not change are left to odc-loader (:func:`exact_read` returns ``None``):
nearest reads onto a grid not aligned with the source, bilinear sources that paste onto the grid, reads from
overviews (a 2× or coarser output), multi-band sources and sources georeferenced by ground control
points (Earth Search's uncalibrated GRD, which clearcube does not load by default).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from odc.geo.converters import rio_geobox
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi
from odc.geo.roi import roi_is_empty, roi_shape
from odc.geo.warp import resampling_s2rio
from odc.loader._reader import (
    nodata_mask,
    resolve_band_query,
    resolve_dst_dtype,
    resolve_dst_nodata,
    resolve_src_nodata,
    same_nodata,
)
from pyproj import Transformer
from rasterio.vrt import WarpedVRT

#: Translation tolerance (output pixels) below which odc-loader pastes instead of warping; the
#: same value it uses for non-nearest reads, so both agree on which sources paste.
PASTE_TOLERANCE = 0.05

#: Side (output pixels) of the blocks a bilinear read is warped in. The blocks sit on a lattice
#: fixed by the output grid's coordinates, not by the read window, so GDAL's approximate
#: transformer (which interpolates across whatever region it is asked to warp) sees the same
#: regions whatever window a pixel is read in.
WARP_BLOCK = 256

#: Error bound (source pixels) of GDAL's transformer approximation inside a block: 1 cm on a
#: 10 m source. Warping in blocks to this bound is ~4x cheaper than transforming every pixel
#: (0.13 vs 0.50 s per 1024 px window of the demo's Sentinel-1, benchmarks/RESULTS.md).
BLOCK_TOLERANCE = 1e-3

#: The same bound where the lattice cannot be fixed (a rotated output grid): small enough that
#: every output pixel is transformed exactly (a warped VRT refuses 0).
EXACT_TOLERANCE = 1e-6

Roi = tuple[slice, slice]


def _transformer(src_crs: str, dst_crs: str) -> Transformer:
    """A pyproj transformer between two CRSs, built once per pair and thread (it takes ms)."""
    return _thread_transformer(src_crs, dst_crs, threading.get_ident())


@functools.lru_cache(maxsize=64)
def _thread_transformer(src_crs: str, dst_crs: str, thread: int) -> Transformer:
    return Transformer.from_crs(src_crs, dst_crs, always_xy=True)


def kernel_scale(src: GeoBox, dst: GeoBox) -> tuple[float, float]:
    """Output pixels per source pixel along the source's x and y, at the source's centre.

    This is what GDAL calls ``XSCALE``/``YSCALE``: below 1 it widens the resampling kernel by its
    inverse (an anti-aliased downsample). One value per source, not per read window.
    """
    ny, nx = src.shape
    cols = np.array([nx / 2, nx / 2 + 1, nx / 2])
    rows = np.array([ny / 2, ny / 2, ny / 2 + 1])
    a, b, c, d, e, f = tuple(src.affine)[:6]
    x, y = _transformer(str(src.crs), str(dst.crs)).transform(
        a * cols + b * rows + c, d * cols + e * rows + f
    )
    a, b, c, d, e, f = tuple(~dst.affine)[:6]
    px, py = a * np.asarray(x) + b * np.asarray(y) + c, d * np.asarray(x) + e * np.asarray(y) + f
    along_x = float(np.hypot(px[1] - px[0], py[1] - py[0]))
    along_y = float(np.hypot(px[2] - px[0], py[2] - py[0]))
    return along_x, along_y


def lattice_origin(grid: GeoBox) -> tuple[int, int] | None:
    """``(row, column)`` of ``grid``'s top-left pixel counted from its CRS's coordinate origin.

    Two windows of one output grid differ by whole pixels, so their lattice origins differ by the
    same whole numbers: blocks placed at multiples of :data:`WARP_BLOCK` on this count are the
    same blocks for every window. ``None`` for a rotated grid.
    """
    a, b, c, d, e, f = tuple(grid.affine)[:6]
    if b or d or a <= 0 or e >= 0:
        return None
    # the 1e-6 keeps a whole-pixel origin whose division lands a hair below the integer on it
    return math.floor(f / e + 1e-6), math.floor(c / a + 1e-6)


def warp_in_blocks(
    warp: Callable[..., Any], bidx: int, grid: GeoBox, roi: Roi, out: np.ndarray
) -> None:
    """Fill ``out`` (the pixels of ``grid[roi]``) by warping whole lattice blocks and cropping.

    ``warp(transform=, width=, height=, tolerance=)`` opens a warped VRT of the source. Each block
    gets a VRT of its own: windows of one larger VRT differed by an ulp from window to window
    (GDAL warps such a VRT in chunks of its own choosing). A pixel's value then depends only on
    its block, exactly where the grid's coordinates are whole multiples of its pixel size (the
    UTM grids clearcube builds); elsewhere to within rounding of the block's origin.
    """
    origin = lattice_origin(grid)
    (ys, xs), n = roi, WARP_BLOCK
    if origin is None:
        box = grid[roi]
        with warp(
            transform=box.transform, width=box.shape.x, height=box.shape.y,
            tolerance=EXACT_TOLERANCE,
        ) as vrt:  # fmt: skip
            out[...] = vrt.read(bidx)
        return
    # the region's extent in lattice pixels, widened to whole blocks
    gy0, gx0 = origin[0] + ys.start, origin[1] + xs.start
    gy1, gx1 = origin[0] + ys.stop, origin[1] + xs.stop
    by0, bx0 = gy0 // n * n, gx0 // n * n
    by1, bx1 = -(-gy1 // n) * n, -(-gx1 // n) * n
    for by in range(by0, by1, n):
        for bx in range(bx0, bx1, n):
            transform = grid.affine @ Affine.translation(bx - origin[1], by - origin[0])
            with warp(transform=transform, width=n, height=n, tolerance=BLOCK_TOLERANCE) as vrt:
                block = vrt.read(bidx)
            # the part of the block inside the region, in block and in ``out`` coordinates
            y0, y1 = max(by, gy0), min(by + n, gy1)
            x0, x1 = max(bx, gx0), min(bx + n, gx1)
            out[y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0] = block[
                y0 - by : y1 - by, x0 - bx : x1 - bx
            ]


def upsample_factor(src: GeoBox, dst: GeoBox) -> tuple[int, int, int] | None:
    """``(k, row offset, column offset)`` when ``dst`` is ``src`` upsampled by a whole ``k ≥ 1``.

    The offsets are in output pixels from the source's top-left corner to the output's (either
    may be negative). ``None`` when the grids differ in CRS, rotation, or alignment, or when the
    factor is not a whole number (k = 1: the same grid, a paste).
    """
    a, b, c, d, e, f = tuple(src.affine)[:6]
    da_, db, dc, dd, de, df = tuple(dst.affine)[:6]
    if b or d or db or dd or src.crs != dst.crs or da_ <= 0 or de >= 0:
        return None
    k = a / da_
    if round(k) < 1 or abs(k - round(k)) > 1e-9 or abs(e / de - k) > 1e-9:
        return None
    rows, cols = (f - df) / -de, (dc - c) / da_
    if abs(rows - round(rows)) > 1e-6 or abs(cols - round(cols)) > 1e-6:
        return None
    return round(k), round(rows), round(cols)


def upsampled_read(
    rdr: Any, bidx: int, src_box: GeoBox, cfg: Any, dst_geobox: GeoBox, dst: np.ndarray | None
) -> tuple[Roi, np.ndarray] | None:
    """Nearest onto a whole-factor upsampled grid: read the source pixels, repeat each ``k``×``k``.

    ``None`` when the grids are not so related (odc-loader reads it then).
    """
    factor = upsample_factor(src_box, dst_geobox)
    if factor is None:
        return None
    k, oy, ox = factor
    (height, width), (ny, nx) = src_box.shape.yx, dst_geobox.shape.yx
    # the output pixels inside the source: row i covers source row (oy + i) // k
    y0, y1 = max(0, -oy), min(ny, height * k - oy)
    x0, x1 = max(0, -ox), min(nx, width * k - ox)
    roi: Roi = (slice(y0, max(y0, y1)), slice(x0, max(x0, x1)))
    dtype = resolve_dst_dtype(rdr.dtypes[bidx - 1], cfg)
    out = dst[roi] if dst is not None else np.empty(roi_shape(roi), dtype=dtype)
    if roi_is_empty(roi):
        return roi, out
    r0, r1 = (oy + y0) // k, (oy + y1 - 1) // k + 1
    c0, c1 = (ox + x0) // k, (ox + x1 - 1) // k + 1
    pixels = rdr.read(bidx, window=((r0, r1), (c0, c1)))
    up = pixels.repeat(k, axis=0).repeat(k, axis=1)
    dy, dx = (oy + y0) - r0 * k, (ox + x0) - c0 * k
    out[...] = up[dy : dy + (y1 - y0), dx : dx + (x1 - x0)]
    src_nodata = resolve_src_nodata(rdr.nodatavals[bidx - 1], cfg)
    dst_nodata = resolve_dst_nodata(out.dtype, cfg, src_nodata)
    if dst_nodata is not None and not same_nodata(src_nodata, dst_nodata):
        missing = nodata_mask(pixels, src_nodata)
        if missing.any():
            gone = missing.repeat(k, axis=0).repeat(k, axis=1)
            out[gone[dy : dy + (y1 - y0), dx : dx + (x1 - x0)]] = dst_nodata
    return roi, out


def exact_read(
    src: Any, cfg: Any, dst_geobox: GeoBox, *, dst: np.ndarray | None = None, selection: Any = None
) -> tuple[Roi, np.ndarray] | None:
    """Read ``src`` (an odc-loader ``RasterSource``) onto ``dst_geobox`` with an exact warp.

    Returns the output region and its pixels, like an odc-loader reader, or ``None`` when the read
    is one odc-loader's own path already does independently of the window (see the module).
    """
    with rasterio.open(src.uri, "r", sharing=False) as rdr:
        bidx = resolve_band_query(src, rdr.count, selection=selection)
        if not isinstance(bidx, int):
            return None
        src_box = rio_geobox(rdr)
        if not isinstance(src_box, GeoBox):
            return None  # georeferenced by ground control points: odc-loader's warp
        if cfg.nearest:
            return upsampled_read(rdr, bidx, src_box, cfg, dst_geobox, dst)
        rr = compute_reproject_roi(src_box, dst_geobox, ttol=PASTE_TOLERANCE)
        if (rr.paste_ok and rr.read_shrink == 1) or (cfg.use_overviews and rr.read_shrink > 1):
            return None
        roi: Roi = rr.roi_dst  # type: ignore[assignment]
        dtype = resolve_dst_dtype(rdr.dtypes[bidx - 1], cfg)
        out = dst[roi] if dst is not None else np.empty(roi_shape(roi), dtype=dtype)
        src_nodata = resolve_src_nodata(rdr.nodatavals[bidx - 1], cfg)
        dst_nodata = resolve_dst_nodata(out.dtype, cfg, src_nodata)
        if roi_is_empty(roi):
            return roi, out
        if roi_is_empty(rr.roi_src):
            if dst_nodata is not None:
                out[...] = dst_nodata
            return roi, out
        xscale, yscale = kernel_scale(src_box, dst_geobox)
        warp = functools.partial(
            WarpedVRT,
            rdr,
            crs=str(dst_geobox.crs),
            resampling=resampling_s2rio(cfg.resampling),
            src_nodata=src_nodata,
            nodata=dst_nodata,
            dtype=out.dtype.name,
            XSCALE=repr(xscale),  # warp options go as keywords: ``warp_extras`` is ignored
            YSCALE=repr(yscale),
        )
        warp_in_blocks(warp, bidx, dst_geobox, roi, out)
    return roi, out

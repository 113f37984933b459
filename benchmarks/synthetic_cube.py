"""A masked clearcube cube of synthetic fields, made without a catalog, GDAL or the mask models.

    python benchmarks/synthetic_cube.py /tmp/synthetic.zarr --edge 960 --dates 9

The GPU machine has torch but not clearcube's reading stack (rasterio, pystac, s2cloudless), and
the working tree that travels to it is limited to 64 MiB (the demo's cube alone is ~130 MB), so the
benchmarks that need a masked cube there (bench_gpu.py ``tasks`` and ``pipeline``,
bench_tile_io.py) make this one instead: written by clearcube's own ``write_cube`` (the cube's
chunks and codecs) and masked by its own mask stage on the ``scl`` route (``cloud``, ``mask_state``
and the recorded dates, as a real run leaves them). Its values are smooth fields plus per-pixel
texture (±24 DN); each date is clear on a third of the area, so every tile fuses three dates
(L = 3, as the demo's do). Its ``s2`` chunks take ~1.3x the demo cube's bytes per pixel (128 vs 90 MB
per megapixel of 9 dates), so its reads are a little slower than a real cube's: a benchmark of
reading, writing and the network's time, not of fills.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr

from clearcube.bands import S1_BANDS, S2_BANDS
from clearcube.pipeline.cube_masks import mask_dates
from clearcube.pipeline.cube_store import write_cube
from clearcube.pipeline.masking import MaskRequest

#: Sen2Cor scene classes used: 4 vegetation (clear), 9 cloud of high probability.
CLEAR_CLASS, CLOUD_CLASS = 4, 9
#: Side (px) of the cells whose diagonal bands are clear on one date in three.
CELL = 32


def synthetic_dataset(edge: int, dates: int, *, chunk: int = 256, seed: int = 0) -> xr.Dataset:
    """An in-memory cube like ``load_cube``'s (uint16 DN s2, float32 dB s1, ``scl``), UTM 32N."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:edge, :edge].astype(np.float32) / np.float32(edge)
    s2 = np.empty((dates, len(S2_BANDS), edge, edge), dtype=np.uint16)
    for t in range(dates):
        for b in range(len(S2_BANDS)):
            field = 2000 + 1200 * np.sin(7 * xx + 0.4 * t + 0.3 * b) * np.cos(5 * yy - 0.2 * b)
            s2[t, b] = field + rng.integers(-24, 25, size=(edge, edge))
    s1 = np.stack(
        [
            np.stack([-12 + 4 * np.sin(6 * xx + t), -18 + 3 * np.cos(5 * yy - t)])
            + rng.normal(0, 0.5, size=(2, edge, edge))
            for t in range(dates)
        ]
    ).astype(np.float32)
    # Each date clear on a third of the area, in diagonal bands of 32 px cells, the next date
    # on the next third: a tile needs three dates for its ground (as the demo's tiles fuse
    # three), and any three consecutive dates see every pixel.
    cell = np.add.outer(np.arange(edge) // CELL, np.arange(edge) // CELL)
    scl = np.stack(
        [np.where((cell + t) % 3 == 0, CLEAR_CLASS, CLOUD_CLASS) for t in range(dates)]
    ).astype(np.uint8)
    times = pd.date_range("2024-05-02T10:15:41", periods=dates, freq="10D").values
    x0, y0, res = 582280.0, 4995720.0, 10.0
    ds = xr.Dataset(
        {
            "s2": (("time", "band", "y", "x"), s2),
            "s1": (("time", "s1_band", "y", "x"), s1),
            "scl": (("time", "y", "x"), scl),
        },
        coords={
            "time": times,
            "s1_time": ("time", times),
            "sun_azimuth": ("time", np.full(dates, 150.0)),
            "sun_elevation": ("time", np.full(dates, 60.0)),
            "cloud_cover": ("time", np.full(dates, 30.0)),
            "y": y0 - res * (np.arange(edge) + 0.5),
            "x": x0 + res * (np.arange(edge) + 0.5),
            "band": np.asarray(S2_BANDS, dtype=object),
            "s1_band": np.asarray(S1_BANDS, dtype=object),
        },
        attrs={
            "crs": "EPSG:32632",
            "transform": [x0, res, 0.0, y0, 0.0, -res],
            "resolution": res,
            "clearcube_chunk": chunk,
        },
    )
    return ds.chunk({"time": 1, "band": -1, "s1_band": -1, "y": chunk, "x": chunk})


def synthetic_cube(path: Path, edge: int = 960, dates: int = 9, *, seed: int = 0) -> Path:
    """Write :func:`synthetic_dataset` to ``path`` and mask every date (``scl`` route)."""
    region = 4 * 256
    # this process's threads, whatever client is about: the values are in this process
    write_cube(synthetic_dataset(edge, dates, seed=seed), path, region_size=region,
               scheduler="threads")  # fmt: skip
    with dask.config.set(scheduler="threads"):
        mask_dates(path, tuple(range(dates)), MaskRequest(method="scl"), lambda d, n: None)
    return path


def main() -> None:
    """Write one cube."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the new cube's folder")
    p.add_argument("--edge", type=int, default=960, help="pixels per side (960: 4 × 4 tiles)")
    p.add_argument("--dates", type=int, default=9)
    args = p.parse_args()
    print(synthetic_cube(args.out, args.edge, args.dates))


if __name__ == "__main__":
    main()

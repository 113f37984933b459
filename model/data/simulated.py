"""Training cubes simulated by the demo-region generator, with seeds other than the demo's.

The demo checkpoint is trained on landscapes that the generator draws for seeds 1, 2, ...; the
demo region itself (seed 0) stays unseen, so the demo's output shows how the model does on a
region it never trained on. Each simulated cube has the schema of a clearcube cube (``s2`` DN
with 20 m and 60 m bands block-averaged then repeated to 10 m, as odc-stac's nearest upsampling
of real products gives; ``s1`` dB on the S2 grid and time axis; ``cloud`` from the simulation's
true labels), so :class:`~clearcube.model.data.cube_dataset.CubeDataset` serves samples from it
exactly as from a real cube. Needs only numpy, scipy and xarray (no GDAL), so it runs on a bare
GPU machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from clearcube.catalogs.bands import S1_BANDS, S2_BANDS, S2_RESOLUTION


def simulated_cube(
    seed: int, *, size: int = 384, n_dates: int = 9, level: str = "L1C"
) -> xr.Dataset:
    """A cube of the demo generator's landscape ``seed`` (``size`` × ``size`` px, ``n_dates``).

    Args:
        seed: landscape and weather seed; 0 is the demo region (keep it for evaluation).
        size: side in 10 m pixels, a multiple of 6 (whole 60 m pixels).
        n_dates: Sentinel-2 dates, every 10 days (cloud cover follows the demo's schedule).
        level: ``"L1C"`` (top of atmosphere, 13 bands) or ``"L2A"`` (the demo catalog's
            surface reflectance, 12 bands: no B10), as a cube of that level holds them.
    """
    from clearcube.catalogs.bands import L2A_MISSING
    from clearcube.catalogs.demo.generate import (
        DEMO_BBOX,
        simulate_s1_date,
        simulate_s2_date,
        toa_to_boa,
    )
    from clearcube.catalogs.demo.scene import make_landscape
    from clearcube.catalogs.demo.writer import block_mean, to_dn

    if size % 6:
        raise ValueError(f"size must be a multiple of 6 (whole 60 m pixels), got {size}")
    lon, lat = (DEMO_BBOX[0] + DEMO_BBOX[2]) / 2, (DEMO_BBOX[1] + DEMO_BBOX[3]) / 2
    if level not in ("L1C", "L2A"):
        raise ValueError(f"level must be 'L1C' or 'L2A', got {level!r}")
    bands = [b for b in S2_BANDS if not (level == "L2A" and b in L2A_MISSING)]
    land = make_landscape(np.random.default_rng([seed, 0]), size)
    s2 = np.empty((n_dates, len(bands), size, size), dtype=np.uint16)
    s1 = np.empty((n_dates, len(S1_BANDS), size, size), dtype=np.float32)
    cloud = np.empty((n_dates, size, size), dtype=bool)
    times = []
    for t in range(n_dates):
        _, moment, _, sky, toa = simulate_s2_date(land, t, seed, lon, lat)
        refl = toa_to_boa(toa) if level == "L2A" else toa
        for b, band in enumerate(bands):
            src = refl[S2_BANDS.index(band)]
            factor = S2_RESOLUTION[band] // 10
            coarse = block_mean(src, factor, size) if factor > 1 else src
            fine = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
            s2[t, b] = to_dn(fine[:size, :size])
        s1[t] = simulate_s1_date(land, t, seed)[1]
        cloud[t] = sky.truth[:size, :size] != 0  # thick, thin, cirrus and shadow
        times.append(np.datetime64(moment.replace(tzinfo=None), "ns"))
    return xr.Dataset(
        {
            "s2": (("time", "band", "y", "x"), s2),
            "s1": (("time", "s1_band", "y", "x"), s1),
            "cloud": (("time", "y", "x"), cloud),
        },
        coords={"time": np.array(times), "band": bands, "s1_band": list(S1_BANDS)},
        attrs={"source": f"clearcube demo generator, seed {seed}, {level}"},
    )


def simulated_cubes(
    seeds: Sequence[int], *, size: int = 384, n_dates: int = 9, level: str = "L1C"
) -> list[xr.Dataset]:
    """:func:`simulated_cube` for each seed (refuses seed 0, the held-out demo region)."""
    if 0 in seeds:
        raise ValueError("seed 0 is the demo region, held out for evaluation; train on seeds >= 1")
    return [simulated_cube(s, size=size, n_dates=n_dates, level=level) for s in seeds]

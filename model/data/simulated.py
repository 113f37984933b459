"""Training cubes simulated like the demo region (:mod:`clearcube.simulation`), other seeds.

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

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import ndimage

from clearcube.bands import L2A_MISSING, S1_BANDS, S2_BANDS, S2_RESOLUTION
from clearcube.simulation.scene import Landscape, make_landscape
from clearcube.simulation.world import (
    DEMO_BBOX,
    block_mean,
    simulate_s1_date,
    simulate_s2_date,
    to_dn,
    toa_to_boa,
)


@dataclass(frozen=True)
class Realism:
    """How training landscapes are moved toward real Sentinel-1/2 statistics.

    Each figure answers one gap that ``scripts/compare-realism.py`` measured between the demo
    generator and the real SEN12MS-CR patch of the shared data (not an evaluation set; table in
    model/README.md). The demo region itself is never reworked: only the training and held-out
    simulated landscapes are.
    """

    field_contrast: float = 0.55
    """Scale of each band's smooth (field-scale) deviation from the landscape mean: the
    generator's fields contrast about twice as much as real ones (spatial std B04 0.034 vs 0.017)."""
    smooth_px: float = 2.0
    """Gaussian sigma separating field-scale structure from 10 m texture, which is kept, so
    the relative 10 m roughness rises toward the real one (B04 0.13 -> 0.20, real 0.29)."""
    visible_offset: float = 0.02
    """Reflectance added to B01-B04 (path radiance; the generator's visible bands were 0.025 dark)."""
    sar_coupling: float = 0.35
    """Scale of the land-cover-driven backscatter around its mean (dB): simulated SAR spread
    3.9 dB against 1.8 dB real, and correlated with NIR at 0.3-0.4 against ~0 real."""
    sar_field_db: float = 1.0
    """Std (dB) of backscatter structure the optical image does not show (soil moisture, tillage,
    row direction), a smooth random field shared by VV and VH."""
    sar_offset_db: float = 2.0
    """dB added to VV and VH (the generator's backscatter was ~3 dB darker than the real patch)."""


#: The rework applied to every simulated training and held-out landscape (``None``: the
#: generator as the demo region has it).
REALISM = Realism()


def rework_surface(refl: np.ndarray, realism: Realism) -> np.ndarray:
    """Clear-sky reflectance ``(13, n, n)`` moved toward real statistics (see :class:`Realism`)."""
    out = np.empty_like(refl)
    for b in range(refl.shape[0]):
        band = refl[b]
        smooth = ndimage.gaussian_filter(band, realism.smooth_px)
        mean = float(band.mean())
        detail = band - smooth
        reworked = mean + realism.field_contrast * (smooth - mean) + detail
        if S2_BANDS[b] in ("B01", "B02", "B03", "B04"):
            reworked += realism.visible_offset
        out[b] = np.clip(reworked, 0.0001, 1.0)
    return out


def simulated_s1(land: Landscape, t: int, seed: int, realism: Realism | None) -> np.ndarray:
    """Sentinel-1 dB ``(2, n, n)`` of date ``t``: the generator's, reworked by ``realism``."""
    if realism is None:
        return simulate_s1_date(land, t, seed)[1]

    def rework(mean: np.ndarray) -> np.ndarray:
        extra = np.random.default_rng([seed, 7, t])
        noise = extra.standard_normal(mean.shape[1:]).astype(np.float32)
        hidden = ndimage.gaussian_filter(noise, 12.0)
        hidden *= realism.sar_field_db / max(float(hidden.std()), 1e-6)
        for pol in range(mean.shape[0]):
            centre = float(mean[pol].mean())
            mean[pol] = centre + realism.sar_coupling * (mean[pol] - centre) + hidden
            mean[pol] += realism.sar_offset_db
        return mean

    return simulate_s1_date(land, t, seed, backscatter=rework)[1]


def simulated_cube(
    seed: int,
    *,
    size: int = 384,
    n_dates: int = 9,
    level: str = "L1C",
    realism: Realism | None = REALISM,
) -> xr.Dataset:
    """A cube of the demo generator's landscape ``seed`` (``size`` × ``size`` px, ``n_dates``).

    Args:
        seed: landscape and weather seed; 0 is the demo region (keep it for evaluation).
        size: side in 10 m pixels, a multiple of 6 (whole 60 m pixels).
        n_dates: Sentinel-2 dates, every 10 days (cloud cover follows the demo's schedule).
        level: ``"L1C"`` (top of atmosphere, 13 bands) or ``"L2A"`` (the demo catalog's
            surface reflectance, 12 bands: no B10), as a cube of that level holds them.
        realism: the rework toward real statistics (default :data:`REALISM`); ``None`` gives
            the generator's landscapes as the demo region has them.
    """
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
        surface = None if realism is None else functools.partial(rework_surface, realism=realism)
        _, moment, _, sky, toa = simulate_s2_date(land, t, seed, lon, lat, surface=surface)
        refl = toa_to_boa(toa) if level == "L2A" else toa
        for b, band in enumerate(bands):
            src = refl[S2_BANDS.index(band)]
            factor = S2_RESOLUTION[band] // 10
            coarse = block_mean(src, factor, size) if factor > 1 else src
            fine = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
            s2[t, b] = to_dn(fine[:size, :size])
        s1[t] = simulated_s1(land, t, seed, realism)
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
    seeds: Sequence[int],
    *,
    size: int = 384,
    n_dates: int = 9,
    level: str = "L1C",
    realism: Realism | None = REALISM,
) -> list[xr.Dataset]:
    """:func:`simulated_cube` for each seed (refuses seed 0, the held-out demo region)."""
    if 0 in seeds:
        raise ValueError("seed 0 is the demo region, held out for evaluation; train on seeds >= 1")
    return [
        simulated_cube(s, size=size, n_dates=n_dates, level=level, realism=realism) for s in seeds
    ]

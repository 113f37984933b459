"""Simulated Sentinel-1 GRD backscatter (VV, VH in dB) that follows the demo land cover.

Mean backscatter per class and crop state comes from typical C-band values at ~35-40° incidence
(calm water very dark, forest volume scattering, towns bright from double bounce, crops moving from
soil-dominated to canopy-dominated as they grow). Speckle is multiplicative and gamma distributed
in linear power with the equivalent number of looks of IW GRDH products (4.4).
"""

from __future__ import annotations

from datetime import date

import numpy as np

from clearcube.simulation.scene import (
    BARE,
    CROP,
    FOREST,
    MAIZE,
    MEADOW,
    SOY,
    URBAN,
    WATER,
    WHEAT,
    Landscape,
    crop_state,
)

#: Equivalent number of looks of Sentinel-1 IW GRDH (the Earth Search items' sar:looks_equivalent_number).
ENL = 4.4

# (VV, VH) in dB of a closed canopy per crop type, and of dry residue after harvest.
_CANOPY_DB = {
    WHEAT: (-12.5, -17.5),
    MAIZE: (-9.0, -14.0),
    SOY: (-10.0, -15.0),
    MEADOW: (-11.0, -17.5),
}
_RESIDUE_DB = (-13.0, -20.0)


def soil_db(moisture: float) -> tuple[float, float]:
    """(VV, VH) dB of bare soil with relative surface moisture in [0, 1] (wetter is brighter)."""
    return (-14.0 + 4.0 * moisture, -21.0 + 3.0 * moisture)


def mean_backscatter_db(land: Landscape, day: date, *, moisture: float, wind: float) -> np.ndarray:
    """Speckle-free backscatter ``(2, n, n)`` float32 in dB (VV, VH) for one acquisition.

    Args:
        land: the landscape.
        day: the acquisition date (drives crop growth).
        moisture: relative soil moisture in [0, 1] (rain the day before makes soils brighter).
        wind: relative wind speed in [0, 1] (roughens water: up to +5 dB).
    """
    green, dry = crop_state(land.crop, land.phase_days, day)
    soil_vv, soil_vh = soil_db(moisture)
    out = np.empty((2, *land.cover.shape), dtype=np.float32)
    for pol, soil in ((0, soil_vv), (1, soil_vh)):
        canopy = np.full(land.cover.shape, soil, dtype=np.float32)
        for kind, db in _CANOPY_DB.items():
            canopy[land.crop == kind] = db[pol]
        crop_db = green * canopy + dry * _RESIDUE_DB[pol] + (1.0 - green - dry) * soil
        layer = np.select(
            [
                land.cover == WATER,
                land.cover == FOREST,
                land.cover == URBAN,
                land.cover == BARE,
                land.cover == CROP,
            ],
            [
                np.float32((-21.0, -28.0)[pol] + 5.0 * wind),
                np.float32((-7.5, -13.0)[pol]),
                np.float32((-1.0, -9.0)[pol]),
                np.float32(soil),
                crop_db,
            ],
            default=np.float32(soil),
        )
        # Field-to-field differences in roughness and biomass, about +-1 dB, on land only.
        texture = np.where(land.cover == WATER, 0.0, 15.0 * (land.brightness - 1.0))
        out[pol] = layer + texture
    return out


def add_speckle(mean_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiply linear power by unit-mean gamma speckle with :data:`ENL` looks; return dB."""
    linear = np.power(10.0, mean_db / 10.0, dtype=np.float32)
    speckle = rng.gamma(shape=ENL, scale=1.0 / ENL, size=mean_db.shape).astype(np.float32)
    return (10.0 * np.log10(np.maximum(linear * speckle, 1e-6))).astype(np.float32)

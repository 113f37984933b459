"""The demo region's ground truth: grid, land cover, crop phenology and top-of-atmosphere spectra.

Everything here is vectorised numpy driven by an explicit ``numpy.random.Generator``, so the same
seed gives the same arrays on every machine. The landscape imitates the Po valley south-east of
Cremona (UTM 32N): a meandering river with a riparian poplar belt, a small town with roads, and
long rectangular-ish fields of wheat, maize, soybean, meadow and fallow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy.spatial import cKDTree

#: Land-cover codes of :attr:`Landscape.cover`.
WATER, FOREST, CROP, BARE, URBAN = 1, 2, 3, 4, 5

#: Crop types of :attr:`Landscape.crop` (0 where the pixel is not cropland).
WHEAT, MAIZE, SOY, MEADOW = 1, 2, 3, 4

PIXEL_M = 10
_S2_GRID_ORIGIN = (499980.0, 5000040.0)  # upper-left corner of MGRS tile 32TNQ
_CENTRE = (_S2_GRID_ORIGIN[0] + 60 * 1450, _S2_GRID_ORIGIN[1] - 60 * 150)

# Top-of-atmosphere reflectance, bands B01..B12 (with B8A, B10), typical L1C values at 45°N in summer.
SPECTRA = {
    "water": (0.110, 0.090, 0.070, 0.045, 0.040, 0.030, 0.028, 0.025, 0.022, 0.008, 0.0015, 0.010, 0.007),
    "forest": (0.120, 0.090, 0.080, 0.050, 0.090, 0.220, 0.270, 0.300, 0.310, 0.100, 0.0020, 0.160, 0.080),
    "green": (0.120, 0.088, 0.085, 0.042, 0.100, 0.290, 0.370, 0.410, 0.420, 0.130, 0.0020, 0.200, 0.095),
    "dry": (0.130, 0.110, 0.120, 0.140, 0.170, 0.220, 0.250, 0.270, 0.290, 0.090, 0.0030, 0.330, 0.250),
    "soil": (0.140, 0.120, 0.125, 0.145, 0.165, 0.190, 0.205, 0.220, 0.240, 0.080, 0.0030, 0.300, 0.240),
    "urban": (0.160, 0.145, 0.140, 0.150, 0.160, 0.175, 0.185, 0.200, 0.210, 0.070, 0.0030, 0.220, 0.190),
}  # fmt: skip


@dataclass(frozen=True)
class Grid:
    """The demo region's 10 m UTM grid; every coarser band grid shares its upper-left corner."""

    epsg: int
    """EPSG code of the UTM zone."""
    x0: float
    """Easting of the upper-left corner in metres (on the 60 m Sentinel-2 grid of tile 32TNQ)."""
    y0: float
    """Northing of the upper-left corner in metres."""
    size: int
    """Width and height in 10 m pixels."""

    @property
    def padded(self) -> int:
        """Simulation canvas side: ``size`` rounded up to whole 60 m pixels."""
        return 6 * math.ceil(self.size / 6)

    def shape(self, resolution: int) -> tuple[int, int]:
        """Raster shape ``(rows, cols)`` at ``resolution`` metres (10, 20 or 60)."""
        n = math.ceil(self.size * PIXEL_M / resolution)
        return (n, n)

    def transform(self, resolution: int) -> tuple[float, ...]:
        """STAC ``proj:transform`` (six affine coefficients) at ``resolution`` metres."""
        return (float(resolution), 0.0, self.x0, 0.0, -float(resolution), self.y0)

    def bounds(self) -> tuple[float, float, float, float]:
        """UTM bounds ``(left, bottom, right, top)`` of the 10 m grid."""
        side = self.size * PIXEL_M
        return (self.x0, self.y0 - side, self.x0 + side, self.y0)


def demo_grid(size: int) -> Grid:
    """The grid of a ``size`` × ``size`` demo region, centred on the same place for every size."""
    half = 60 * math.ceil(size / 12)
    return Grid(epsg=32632, x0=_CENTRE[0] - half, y0=_CENTRE[1] + half, size=size)


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], *, scale_px: float, beta: float = 3.0
) -> np.ndarray:
    """Spatially correlated noise, zero mean and unit variance (periodic FFT spectral synthesis).

    Args:
        rng: the source of randomness.
        shape: ``(rows, cols)``.
        scale_px: features smaller than about this many pixels are damped (a soft low-pass).
        beta: spectral slope; power falls as ``k**-beta`` (3 gives cloud- and terrain-like fields).
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = 1.0
    amplitude = k ** (-beta / 2) * np.exp(-((k * scale_px) ** 2))
    amplitude[0, 0] = 0.0
    field = np.fft.irfft2(np.fft.rfft2(white) * amplitude, s=shape).astype(np.float32)
    field -= field.mean()
    field /= field.std() + 1e-12
    return field


@dataclass(frozen=True)
class Landscape:
    """Per-pixel ground truth on the padded 10 m canvas (all arrays ``(n, n)``)."""

    cover: np.ndarray
    """Land-cover code (WATER, FOREST, CROP, BARE, URBAN), uint8."""
    crop: np.ndarray
    """Crop type (WHEAT, MAIZE, SOY, MEADOW) on cropland, else 0, uint8."""
    phase_days: np.ndarray
    """Per-field phenology shift in days (sowing dates differ between farms), float32."""
    brightness: np.ndarray
    """Multiplicative texture around 1 (soil moisture, canopy density), float32."""
    edge: np.ndarray
    """True on field boundaries (tracks, ditches, hedges), bool."""


def make_landscape(rng: np.random.Generator, n: int) -> Landscape:
    """Draw the land cover of an ``n`` × ``n`` canvas of 10 m pixels."""
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float32)
    # Fields: Voronoi cells of jittered seeds with an anisotropic metric (long east-west strips).
    n_fields = max(8, int(n * n / 2500))
    seeds = rng.uniform(0, n, size=(n_fields, 2)).astype(np.float32)
    stretch = np.array([1.0, 0.35], dtype=np.float32)  # row distance counts more: strips run E-W
    tree = cKDTree(seeds * stretch)
    points = np.stack([rows.ravel(), cols.ravel()], axis=1) * stretch
    field = tree.query(points, workers=1)[1].reshape(n, n).astype(np.int32)
    edge = np.zeros((n, n), dtype=bool)
    edge[:, 1:] |= field[:, 1:] != field[:, :-1]
    edge[1:, :] |= field[1:, :] != field[:-1, :]

    field_crop = rng.choice(
        np.array([WHEAT, MAIZE, SOY, MEADOW, 0], dtype=np.uint8),
        size=n_fields,
        p=[0.3, 0.3, 0.15, 0.15, 0.1],
    )
    cover = np.where(field_crop[field] == 0, BARE, CROP).astype(np.uint8)
    crop = field_crop[field]

    # The river: a meander across the canvas, with a riparian poplar belt and some woodland patches.
    wiggle = fractal_noise(rng, (n, 1), scale_px=n / 8, beta=2.0)[:, 0] * n * 0.06
    centre = n * 0.55 + 0.18 * n * np.sin(rows[:, 0] / n * 2.2 * np.pi) + wiggle
    distance = np.abs(cols - centre[:, None])
    half_width = 4.0 + 0.004 * n
    woods = fractal_noise(rng, (n, n), scale_px=n / 40)
    forest = (distance < half_width + 12 + 6 * woods) | (woods > 2.1)
    cover[forest] = FOREST
    cover[distance < half_width] = WATER

    # A town near one corner, with two straight roads crossing the fields.
    town = np.hypot(rows - 0.22 * n, cols - 0.2 * n) < 0.09 * n * (1 + 0.25 * woods)
    roads = (np.abs(rows - 0.22 * n) < 1.0) | (
        np.abs(cols - 0.2 * n - 0.1 * (rows - 0.22 * n)) < 1.0
    )
    cover[(town | roads) & (cover != WATER)] = URBAN
    crop[cover != CROP] = 0

    phase = rng.normal(0.0, 6.0, size=n_fields).astype(np.float32)[field]
    brightness = 1.0 + 0.06 * fractal_noise(rng, (n, n), scale_px=2.0, beta=2.0)
    brightness *= rng.normal(1.0, 0.05, size=n_fields).astype(np.float32)[field]
    return Landscape(cover, crop, phase, brightness.astype(np.float32), edge & (cover == CROP))


def _logistic(x: np.ndarray) -> np.ndarray:
    y: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return y


def crop_state(
    crop: np.ndarray, phase_days: np.ndarray, day: date
) -> tuple[np.ndarray, np.ndarray]:
    """Green and dry vegetation cover fractions of each crop pixel on ``day``.

    Winter wheat is green in May, ripens through June and is harvested early in July; maize and
    soybean emerge in May and close their canopy in June-July; meadows are cut about monthly.

    Returns:
        ``(green, dry)``, float32 arrays in [0, 1] with ``green + dry <= 1``.
    """
    doy = np.float32(day.timetuple().tm_yday) + phase_days
    green = np.zeros(crop.shape, dtype=np.float32)
    dry = np.zeros(crop.shape, dtype=np.float32)
    wheat = crop == WHEAT
    ripen = _logistic((doy - 165.0) / 5.0)
    harvested = _logistic((doy - 185.0) / 2.0)
    green[wheat] = (0.9 * (1 - ripen))[wheat]
    dry[wheat] = (0.9 * ripen * (1 - harvested) + 0.25 * harvested)[wheat]
    for kind, mid in ((MAIZE, 165.0), (SOY, 180.0)):
        sel = crop == kind
        green[sel] = (0.05 + 0.9 * _logistic((doy - mid) / 9.0))[sel]
    meadow = crop == MEADOW
    since_cut = np.mod(doy - 120.0, 33.0) / 33.0
    green[meadow] = (0.35 + 0.6 * since_cut)[meadow]
    return green, dry


def surface_reflectance(land: Landscape, day: date, rng: np.random.Generator) -> np.ndarray:
    """Cloud-free top-of-atmosphere reflectance on ``day``: float32 ``(13, n, n)``."""
    green, dry = crop_state(land.crop, land.phase_days, day)
    soil = 1.0 - green - dry
    # One spectrum per cover code (index = code); cropland is mixed from green, dry and soil.
    names = ("soil", "water", "forest", "soil", "soil", "urban")
    table = np.array([SPECTRA[name] for name in names], dtype=np.float32)
    hedge = 0.5 * (np.array(SPECTRA["soil"]) + np.array(SPECTRA["forest"]))
    is_crop = land.cover == CROP
    out = np.empty((13, *land.cover.shape), dtype=np.float32)
    for b in range(13):  # band by band: temporaries stay in cache
        mixed = green * SPECTRA["green"][b] + dry * SPECTRA["dry"][b] + soil * SPECTRA["soil"][b]
        band = np.where(is_crop, mixed, table[land.cover, b])
        band[land.edge] = hedge[b]  # tracks and hedges between fields: soil and grass
        band *= land.brightness
        band += 0.002 * rng.standard_normal(band.shape, dtype=np.float32)  # sensor noise
        out[b] = np.clip(band, 0.0001, 1.0)
    return out


def green_fraction(land: Landscape, day: date) -> np.ndarray:
    """Fraction of green vegetation per pixel on ``day`` (used by the SCL and SAR simulators)."""
    green, _ = crop_state(land.crop, land.phase_days, day)
    return np.where(land.cover == FOREST, 1.0, np.where(land.cover == CROP, green, 0.0)).astype(
        np.float32
    )

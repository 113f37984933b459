"""The simulated world: Sentinel-2 and Sentinel-1 acquisitions over a simulated landscape.

One home for the physics that two users share: the demo catalog writer
(:mod:`clearcube.catalogs.demo`) turns these acquisitions into COGs and STAC items, and the
model's simulated training data (:mod:`clearcube.model.data.simulated`) turns them into cubes.
Needs only numpy and scipy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np

from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.simulation import clouds, sar, scene

#: Where the simulated landscapes lie (the demo region's WGS84 box, Po valley near Cremona): the
#: sun's position, and so the cloud shadows, follow from it.
DEMO_BBOX = (10.046, 45.026, 10.163, 45.109)

#: The first Sentinel-2 date of every simulated series (then one every 10 days).
FIRST_S2 = date(2024, 5, 2)
_S2_TIME = (10, 15, 41)  # UTC: the descending morning pass over tile 32TNQ (relative orbit 22)
# Sentinel-2 path radiance and transmittance, B01..B12: a crude but monotone L1C -> L2A correction.
_PATH = np.array(
    [0.08, 0.06, 0.035, 0.02, 0.015, 0.01, 0.008, 0.006, 0.005, 0.003, 0, 0.002, 0.001]
)
_TRANS = np.array([0.85, 0.88, 0.92, 0.94, 0.95, 0.96, 0.96, 0.97, 0.97, 0.9, 1, 0.98, 0.98])


def toa_to_boa(toa: np.ndarray) -> np.ndarray:
    """The demo's L1C -> L2A correction of ``(13, ...)`` reflectance: per band (toa - path) / trans."""
    shape = (-1,) + (1,) * (toa.ndim - 1)
    path = _PATH.reshape(shape).astype(np.float32)
    return ((toa - path) / _TRANS.reshape(shape).astype(np.float32)).astype(np.float32)


def simulate_s2_date(
    land: scene.Landscape,
    t: int,
    seed: int,
    lon: float,
    lat: float,
    *,
    surface: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[date, datetime, tuple[float, float], clouds.Sky, np.ndarray]:
    """Simulate Sentinel-2 date ``t`` over ``land``: top-of-atmosphere reflectance and its sky.

    Returns ``(day, moment, (sun azimuth, elevation), sky, toa (13, n, n) float32)``; the sky
    holds the true cloud/shadow labels. Shared by the catalog writer and the training data;
    ``surface`` (training data only) reworks the clear-sky reflectance before the sky is laid
    over it, so the demo region itself never changes.
    """
    day = FIRST_S2 + timedelta(days=10 * t)
    moment = datetime(day.year, day.month, day.day, *_S2_TIME, tzinfo=UTC)
    azimuth, elevation = solar_position(moment, lon, lat)
    rng = np.random.default_rng([seed, 1, t])
    sky = clouds.make_sky(
        rng,
        land.cover.shape[0],
        cloud_fraction=clouds.CLOUD_SCHEDULE[t % len(clouds.CLOUD_SCHEDULE)],
        cirrus=(t % len(clouds.CLOUD_SCHEDULE)) in clouds.CIRRUS_DATES,
        sun=clouds.SunGeometry(azimuth, elevation),
        cloud_height_m=float(rng.uniform(1200.0, 2500.0)),
    )
    ground = scene.surface_reflectance(land, day, rng)
    toa = clouds.apply_sky(ground if surface is None else surface(ground), sky)
    return day, moment, (azimuth, elevation), sky, toa


def s1_day(t: int) -> date:
    """The day of the Sentinel-1 acquisition paired with S2 date ``t`` (a day before or after)."""
    return FIRST_S2 + timedelta(days=10 * t + (1 if t % 2 == 0 else -1))


def simulate_s1_date(
    land: scene.Landscape,
    t: int,
    seed: int,
    *,
    backscatter: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[date, np.ndarray]:
    """Simulate the Sentinel-1 acquisition paired with S2 date ``t``: ``(day, dB (2, n, n))``.

    ``backscatter`` (training data only, like ``surface`` of :func:`simulate_s2_date`) reworks
    the speckle-free backscatter before the speckle is drawn.
    """
    day = s1_day(t)
    rng = np.random.default_rng([seed, 3, t])
    mean = sar.mean_backscatter_db(
        land, day, moisture=float(rng.uniform()), wind=float(rng.uniform())
    )
    return day, sar.add_speckle(mean if backscatter is None else backscatter(mean), rng)


def solar_position(moment: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate sun ``(azimuth, elevation)`` in degrees (good to about a degree)."""
    doy = moment.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    hours = moment.hour + moment.minute / 60 + moment.second / 3600 + lon / 15
    hour_angle = math.radians((hours - 12.0) * 15.0)
    phi = math.radians(lat)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    elevation = math.asin(sin_el)
    cos_az = (math.sin(decl) - sin_el * math.sin(phi)) / (math.cos(elevation) * math.cos(phi))
    azimuth = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    if hour_angle > 0:
        azimuth = 360.0 - azimuth
    return round(azimuth, 3), round(math.degrees(elevation), 3)


def block_mean(canvas: np.ndarray, factor: int, size: int) -> np.ndarray:
    """Average ``factor`` × ``factor`` blocks of the last two axes of a 10 m canvas.

    Returns ``ceil(size / factor)`` pixels per side, so a coarse grid covers the whole 10 m grid
    (the canvas must be at least that many whole blocks wide).
    """
    m = math.ceil(size / factor)
    cut = canvas[..., : m * factor, : m * factor]
    shape = (*cut.shape[:-2], m, factor, m, factor)
    means: np.ndarray = cut.reshape(shape).mean(axis=(-3, -1), dtype=np.float32)
    return means


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance to Sentinel-2 digital numbers (× 10000), kept off the nodata value 0."""
    return np.clip(np.rint(reflectance * DN_PER_REFLECTANCE), 1, 65535).astype(np.uint16)

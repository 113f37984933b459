"""Simulated clouds, cirrus and cloud shadows over the demo region, and their true labels.

Thick clouds are bright, spectrally flat in the visible and near infrared, darker in the SWIR and
clearly visible in the 1375 nm cirrus band (B10); their edges are semi-transparent. Thin cirrus
shows mainly in B10 with a faint veil elsewhere. Shadows are the cloud layer displaced away from
the sun by ``height / tan(elevation)``, so they move with the sun geometry stated in the items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clearcube.simulation.scene import fractal_noise

#: Labels of the ``truth_cloud`` asset.
CLEAR, THICK, THIN, CIRRUS, SHADOW = 0, 1, 2, 3, 4

#: Opacity from which a cloud pixel counts as thick (the surface contributes less than half).
THICK_OPACITY = 0.5

# Thick-cloud TOA reflectance, B01..B12 with B8A and B10; water vapour absorbs in B09 above clouds.
CLOUD_SPECTRUM = np.array(
    [0.46, 0.44, 0.43, 0.43, 0.44, 0.45, 0.45, 0.45, 0.45, 0.22, 0.10, 0.33, 0.22], dtype=np.float32
)
# What an optically thin cirrus layer adds at full strength (tau = 1).
CIRRUS_SPECTRUM = np.array(
    [0.04, 0.04, 0.035, 0.035, 0.035, 0.035, 0.035, 0.035, 0.035, 0.02, 0.03, 0.02, 0.015],
    dtype=np.float32,
)
_SHADOW_DEPTH = 0.65  # fraction of direct light a full shadow removes; diffuse sky light remains

#: Target share of cloudy pixels per date, cycled when there are more dates. The first date is
#: clear and the third fully overcast, so every demo catalog holds a 0 % and a 100 % scene.
CLOUD_SCHEDULE = (0.0, 0.35, 1.0, 0.12, 0.6, 0.0, 0.25, 0.85, 0.05)
#: Dates (indices into the schedule) that also carry a thin cirrus veil.
CIRRUS_DATES = frozenset({3, 6})


@dataclass(frozen=True)
class SunGeometry:
    """Sun position at acquisition time, as the items' ``view:sun_*`` fields state it."""

    azimuth: float
    """Degrees clockwise from north."""
    elevation: float
    """Degrees above the horizon."""


@dataclass(frozen=True)
class Sky:
    """The atmosphere of one date on the padded 10 m canvas (arrays ``(n, n)``)."""

    opacity: np.ndarray
    """Cloud opacity in [0, 1] (0 clear, 1 opaque), float32."""
    texture: np.ndarray
    """Cloud-top brightness multiplier around 1, float32."""
    cirrus: np.ndarray
    """Cirrus optical strength in [0, 1], float32."""
    shadow: np.ndarray
    """Shadow strength in [0, 1] cast on the ground, float32."""
    truth: np.ndarray
    """Labels CLEAR, THICK, THIN, CIRRUS, SHADOW, uint8."""


def shadow_offset_px(sun: SunGeometry, cloud_height_m: float, pixel_m: float) -> tuple[int, int]:
    """Where a cloud's shadow falls relative to the cloud, as ``(rows, cols)`` in pixels.

    The shadow lies away from the sun: for a sun in the south-east it falls to the north-west.
    Rows grow southwards and columns eastwards.
    """
    distance = cloud_height_m / math.tan(math.radians(sun.elevation)) / pixel_m
    away = math.radians(sun.azimuth + 180.0)
    return (round(-math.cos(away) * distance), round(math.sin(away) * distance))


def make_sky(
    rng: np.random.Generator,
    n: int,
    *,
    cloud_fraction: float,
    cirrus: bool,
    sun: SunGeometry,
    cloud_height_m: float,
    pixel_m: float = 10.0,
) -> Sky:
    """Draw the clouds of one date with exactly ``cloud_fraction`` of pixels under cloud."""
    d_row, d_col = shadow_offset_px(sun, cloud_height_m, pixel_m)
    margin = max(abs(d_row), abs(d_col)) + 1
    big = n + 2 * margin
    field = fractal_noise(rng, (big, big), scale_px=n / 48, beta=3.2)
    texture = (1.0 + 0.12 * fractal_noise(rng, (n, n), scale_px=3.0, beta=2.2)).astype(np.float32)
    inner = field[margin : margin + n, margin : margin + n]
    if cloud_fraction >= 1.0:
        opacity_big = np.ones((big, big), dtype=np.float32)
    elif cloud_fraction <= 0.0:
        opacity_big = np.zeros((big, big), dtype=np.float32)
    else:
        threshold = np.quantile(inner, 1.0 - cloud_fraction)
        opacity_big = np.clip((field - threshold) / 0.35, 0.0, 1.0).astype(np.float32)
        opacity_big[field <= threshold] = 0.0
    opacity = opacity_big[margin : margin + n, margin : margin + n]
    # Ground point p is shaded by the cloud above p - offset.
    rows = slice(margin - d_row, margin - d_row + n)
    cols = slice(margin - d_col, margin - d_col + n)
    shadow = opacity_big[rows, cols] * (1.0 - opacity)

    veil = np.zeros((n, n), dtype=np.float32)
    if cirrus and cloud_fraction < 1.0:
        streaks = fractal_noise(rng, (n, n), scale_px=n / 24, beta=3.0)
        veil = np.clip((streaks - 0.8) / 1.2, 0.0, 1.0).astype(np.float32)

    truth = np.full((n, n), CLEAR, dtype=np.uint8)
    truth[shadow >= 0.5] = SHADOW
    truth[veil >= 0.25] = CIRRUS
    truth[opacity > 0] = THIN
    truth[opacity >= THICK_OPACITY] = THICK
    return Sky(opacity, texture, veil, shadow.astype(np.float32), truth)


def apply_sky(surface: np.ndarray, sky: Sky) -> np.ndarray:
    """Top-of-atmosphere reflectance ``(13, n, n)`` of ``surface`` seen under ``sky``."""
    light = 1.0 - _SHADOW_DEPTH * sky.shadow
    seen = 1.0 - sky.opacity
    cloud = sky.opacity * sky.texture
    out = np.empty(surface.shape, dtype=np.float32)
    for b in range(surface.shape[0]):  # band by band: temporaries stay in cache
        out[b] = (surface[b] * light + CIRRUS_SPECTRUM[b] * sky.cirrus) * seen
        out[b] += CLOUD_SPECTRUM[b] * cloud
    return out


def cloud_cover_percent(truth: np.ndarray) -> float:
    """``eo:cloud_cover``: percentage of pixels under thick cloud, thin cloud or cirrus."""
    cloudy = np.isin(truth, (THICK, THIN, CIRRUS))
    return round(100.0 * float(cloudy.mean()), 2)

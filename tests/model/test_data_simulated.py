"""Simulated training landscapes: the rework toward real statistics, and the demo left alone."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from clearcube.bands import S2_BANDS
from clearcube.model.data.simulated import REALISM, Realism, rework_surface, simulated_cube


def test_rework_scales_field_contrast_keeps_10m_detail_and_brightens_the_visible():
    rng = np.random.default_rng(0)
    n = 64
    fields = np.where(np.arange(n)[None, :] < n // 2, 0.1, 0.3) * np.ones((n, 1))
    detail = 0.005 * rng.standard_normal((n, n))
    refl = np.repeat((fields + detail)[None], 13, axis=0).astype(np.float32)
    realism = Realism(field_contrast=0.5, visible_offset=0.02)
    out = rework_surface(refl, realism)
    mean = refl[0].mean()
    smooth = ndimage.gaussian_filter(refl[0], realism.smooth_px)
    # the closed form per band: mean + c * (smooth - mean) + (x - smooth), + offset in B01-B04
    expected = mean + 0.5 * (smooth - mean) + (refl[0] - smooth)
    for b, band in enumerate(S2_BANDS):
        offset = 0.02 if band in ("B01", "B02", "B03", "B04") else 0.0
        np.testing.assert_allclose(out[b], expected + offset, atol=2e-6)
    # far from the field edge, the two fields now differ by half as much
    left, right = out[7][:, 4:24].mean(), out[7][:, 40:60].mean()
    assert abs((right - left) - 0.1) < 0.005
    # and the 10 m detail is untouched there
    np.testing.assert_allclose(
        np.diff(out[7][:, 40:60], axis=1), np.diff(refl[7][:, 40:60], axis=1), atol=1e-3
    )


def _sar_nir_corr(cube) -> float:
    t = int(np.argmin(cube.cloud.mean(("y", "x")).values))
    clear = ~cube.cloud.values[t]
    nir = cube.s2.values[t, S2_BANDS.index("B08")][clear].astype(np.float64)
    vh = cube.s1.values[t, 1][clear].astype(np.float64)
    return float(np.corrcoef(vh, nir)[0, 1])


def test_reworked_sar_follows_land_cover_less_than_the_generators():
    drawn = simulated_cube(1, size=120, n_dates=2, realism=None)
    reworked = simulated_cube(1, size=120, n_dates=2)
    # the optical clouds are the same (the rework touches the ground, never the sky)
    assert np.array_equal(drawn.cloud.values, reworked.cloud.values)
    assert abs(_sar_nir_corr(reworked)) < 0.75 * abs(_sar_nir_corr(drawn))
    assert reworked.s1.values.mean() > drawn.s1.values.mean() + 0.5 * REALISM.sar_offset_db

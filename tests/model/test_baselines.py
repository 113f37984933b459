"""Baselines on hand-made sequences whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from clearcube.model.baselines import (
    BASELINES,
    clear_mean_fill,
    geometric_median,
    least_cloudy,
    least_cloudy_index,
    mosaicing,
    temporal_median,
)

# Three dates, one band, a 1×3 image. Values per date and pixel:
INPUTS = np.array(
    [
        [[[0.1, 0.2, 0.9]]],
        [[[0.3, 0.4, 0.8]]],
        [[[0.8, 0.6, 0.7]]],
    ]
)
# pixel 0 clear in dates 0, 1, 2; pixel 1 clear in dates 0, 2; pixel 2 clear nowhere
CLOUD = np.array(
    [
        [[False, False, True]],
        [[False, True, True]],
        [[False, False, True]],
    ]
)


def test_least_cloudy_forwards_the_date_with_fewest_cloudy_pixels() -> None:
    cloud = CLOUD.copy()
    cloud[0, 0, 0] = True  # date 0: 2 cloudy, date 1: 2 cloudy, date 2: 1 cloudy
    assert least_cloudy_index(cloud) == 2
    np.testing.assert_array_equal(least_cloudy(INPUTS, cloud), INPUTS[2])
    assert least_cloudy_index(CLOUD) == 0  # tie between dates 0 and 2: the earliest wins


def test_mosaicing_means_clear_dates_and_fills_half() -> None:
    out = mosaicing(INPUTS, CLOUD)
    expected = [(0.1 + 0.3 + 0.8) / 3, (0.2 + 0.6) / 2, 0.5]
    np.testing.assert_allclose(out[0, 0], expected)


def test_mosaicing_copies_a_single_clear_date() -> None:
    cloud = np.ones_like(CLOUD)
    cloud[1, 0, 2] = False
    assert mosaicing(INPUTS, cloud)[0, 0, 2] == 0.8


def test_median_of_clear_dates_with_both_fallbacks() -> None:
    np.testing.assert_allclose(temporal_median(INPUTS, CLOUD)[0, 0], [0.3, (0.2 + 0.6) / 2, 0.5])
    out = temporal_median(INPUTS, CLOUD, fallback="least-cloudy")
    np.testing.assert_allclose(out[0, 0], [0.3, 0.4, 0.9])  # pixel 2 from date 0 (least cloudy)


def test_median_resists_one_outlier_where_the_mean_does_not() -> None:
    x = np.stack([np.full((2, 2, 2), v) for v in (0.1, 0.12, 0.95)])
    cloud = np.zeros((3, 2, 2), bool)
    assert temporal_median(x, cloud)[0, 0, 0] == pytest.approx(0.12)
    assert mosaicing(x, cloud)[0, 0, 0] == pytest.approx((0.1 + 0.12 + 0.95) / 3)


def test_nan_inputs_count_as_unobserved() -> None:
    x = INPUTS.copy()
    x[2, 0, 0, 0] = np.nan
    assert mosaicing(x, CLOUD)[0, 0, 0] == pytest.approx(0.2)
    assert temporal_median(x, CLOUD)[0, 0, 0] == pytest.approx(0.2)


def test_every_baseline_keeps_shape_and_rejects_bad_shapes() -> None:
    for fn in BASELINES.values():
        assert fn(INPUTS, CLOUD).shape == (1, 1, 3)
        with pytest.raises(ValueError, match="L, C, H, W"):
            fn(INPUTS[0], CLOUD)


def test_clear_mean_fill_is_mosaicing_with_the_band_mean_of_every_clear_observation() -> None:
    out = clear_mean_fill(INPUTS, CLOUD)
    # pixel 0: mean of 0.1, 0.3, 0.8 = 0.4; pixel 1: mean of 0.2, 0.6 = 0.4; pixel 2 (never
    # clear): the mean of all five clear observations 0.1, 0.3, 0.8, 0.2, 0.6 = 0.4
    np.testing.assert_allclose(out[0, 0], [0.4, 0.4, 0.4])
    other = INPUTS.copy()
    other[1, 0, 0, 0] = 0.9  # pixel 0 now 0.1, 0.9, 0.8: mean 0.6; every-clear mean 2.6 / 5
    np.testing.assert_allclose(clear_mean_fill(other, CLOUD)[0, 0], [0.6, 0.4, 0.52])
    everything_cloudy = np.ones_like(CLOUD)
    np.testing.assert_allclose(clear_mean_fill(INPUTS, everything_cloudy), 0.5)
    assert BASELINES["clear-mean"] is clear_mean_fill


def test_geometric_median_of_one_band_is_the_median() -> None:
    x = np.array([0.1, 0.2, 0.9, 0.25, 0.3])[:, None, None, None]  # 5 dates, 1 band, 1 px
    cloud = np.zeros((5, 1, 1), dtype=bool)
    np.testing.assert_allclose(geometric_median(x, cloud)[0, 0, 0], 0.25, atol=1e-5)


def test_geometric_median_satisfies_its_optimality_condition_and_resists_an_outlier() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 0.3, size=(6, 3, 2, 2))
    x[5] = 5.0  # one wild date (a missed cloud)
    cloud = np.zeros((6, 2, 2), dtype=bool)
    m = geometric_median(x, cloud, iterations=500, tol=1e-12)
    # Weiszfeld's fixed point: the unit vectors towards the points sum to zero
    diff = x - m[None]
    unit = diff / np.linalg.norm(diff, axis=1, keepdims=True)
    np.testing.assert_allclose(unit.sum(axis=0), 0.0, atol=1e-4)
    assert np.all(m < 0.35)  # the mean would be dragged to ~1
    # a pixel clear nowhere takes the clear-mean fill
    cloud[:, 0, 0] = True
    np.testing.assert_allclose(
        geometric_median(x, cloud)[:, 0, 0], clear_mean_fill(x, cloud)[:, 0, 0]
    )

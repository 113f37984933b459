"""Missing SAR (a date without an S1 pair) takes the other dates' SAR, not a constant."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from clearcube.pipeline.inference import _fill_missing_sar


def _filled(sar: np.ndarray) -> np.ndarray:
    return _fill_missing_sar(torch.from_numpy(sar)).numpy()


def test_a_date_without_sar_takes_the_mean_of_the_dates_with_sar() -> None:
    sar = np.full((3, 2, 2, 2), np.nan, dtype=np.float32)
    sar[0] = 0.2
    sar[1] = -0.4
    sar[1, :, 0, 0] = np.nan  # pixel (0, 0) has SAR on date 0 only
    sar[:, :, 1, 1] = np.nan  # pixel (1, 1) has no SAR on any date
    out = _filled(sar)
    np.testing.assert_allclose(out[2, :, 0, 1], (0.2 - 0.4) / 2)  # date 2: mean of dates 0, 1
    np.testing.assert_allclose(out[:, :, 0, 0], 0.2)  # only date 0 had it
    np.testing.assert_array_equal(out[:, :, 1, 1], 0.0)  # none: the middle of the range
    np.testing.assert_allclose(out.mean(axis=0)[:, 0, 1], (0.2 - 0.4) / 2)  # Eq. 20 mean unbiased


@pytest.mark.parametrize("dates", [1, 2, 3, 5])
def test_the_fill_is_numpys_nanmean_to_the_bit(dates: int) -> None:
    """The device version equals the host one it replaced: ``np.nanmean`` over the dates."""
    rng = np.random.default_rng(dates)
    sar = rng.uniform(-1, 1, size=(dates, 2, 64, 64)).astype(np.float32)
    sar[rng.random(sar.shape) < 0.3] = np.nan
    sar[:, :, :4] = np.nan  # rows no date covers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN rows
        mean = np.nanmean(sar, axis=0, keepdims=True)
    oracle = np.nan_to_num(np.where(np.isnan(sar), mean, sar), nan=0.0)
    out = _filled(sar)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, oracle)

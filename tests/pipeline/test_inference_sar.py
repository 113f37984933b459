"""Missing SAR (a date without an S1 pair) takes the other dates' SAR, not a constant."""

from __future__ import annotations

import numpy as np

from clearcube.pipeline.inference import _fill_missing_sar


def test_a_date_without_sar_takes_the_mean_of_the_dates_with_sar() -> None:
    sar = np.full((3, 2, 2, 2), np.nan, dtype=np.float32)
    sar[0] = 0.2
    sar[1] = -0.4
    sar[1, :, 0, 0] = np.nan  # pixel (0, 0) has SAR on date 0 only
    sar[:, :, 1, 1] = np.nan  # pixel (1, 1) has no SAR on any date
    out = _fill_missing_sar(sar)
    np.testing.assert_allclose(out[2, :, 0, 1], (0.2 - 0.4) / 2)  # date 2: mean of dates 0, 1
    np.testing.assert_allclose(out[:, :, 0, 0], 0.2)  # only date 0 had it
    np.testing.assert_array_equal(out[:, :, 1, 1], 0.0)  # none: the middle of the range
    np.testing.assert_allclose(out.mean(axis=0)[:, 0, 1], (0.2 - 0.4) / 2)  # Eq. 20 mean unbiased

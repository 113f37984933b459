"""Provenance classes from blended one-hot layers, against a float64 oracle written here."""

from __future__ import annotations

import numpy as np

from clearcube.pipeline.provenance import ProvenanceView, provenance_classes


def _oracle(layers: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Class 1..3 = position of the largest weight + 1, pixel by pixel in float64; NaN if none."""
    out = np.full(layers.shape[1:], np.nan)
    for y in range(layers.shape[1]):
        for x in range(layers.shape[2]):
            w = [0.0 if np.isnan(v) else float(v) for v in layers[:, y, x]]
            if sum(w) > 0 and valid[y, x]:
                out[y, x] = w.index(max(w)) + 1  # first maximum wins a tie
    return out


def test_classes_match_the_float64_oracle_on_blends_ties_gaps_and_nan() -> None:
    rng = np.random.default_rng(7)
    layers = rng.random((3, 40, 50)).astype(np.float32)
    layers[:, :5] = 0.0  # no tile weight: nodata
    layers[:, 5:10, :10] = np.nan  # unwritten chunk
    layers[1, 10:15] = np.nan  # one layer missing: the others decide
    layers[:, 15:20] = np.float32(0.5)  # ties: the first class
    layers[:, 20:22] = np.float32(1e-40)  # subnormal weights still count
    valid = rng.random((40, 50)) > 0.1
    got = provenance_classes(layers, valid)
    assert got.shape == (40, 50) and got.dtype == np.float32  # no float64 copies of a window
    np.testing.assert_array_equal(got, _oracle(layers, valid))  # NaN where the oracle has NaN
    assert set(np.unique(got[np.isfinite(got)])) == {1.0, 2.0, 3.0}


def test_the_view_uses_the_composites_first_band_as_validity() -> None:
    layers = np.zeros((3, 6, 6), np.float32)
    layers[2] = 1.0
    composite = np.ones((4, 6, 6), np.float32)
    composite[0, 0, :] = np.nan  # the first band decides, the others are ignored
    composite[3, 1, :] = np.nan
    got = ProvenanceView(layers, composite)[:, 0:6, 0:6]
    assert got.shape == (1, 6, 6)
    assert np.isnan(got[0, 0]).all()
    assert (got[0, 1:] == 3).all()

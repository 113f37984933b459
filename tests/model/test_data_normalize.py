"""The paper's value scaling (§4.4): clipping and exact round trips, numpy and torch alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from clearcube.model.data.normalize import s1_from_model, s1_to_model, s2_from_model, s2_to_model


def test_s2_endpoints_and_clipping():
    dn = np.array([-5, 0, 5000, 10000, 20000], dtype=np.float32)
    np.testing.assert_allclose(s2_to_model(dn), [-1, -1, 0, 1, 1])
    assert s2_to_model(np.array([2500], dtype=np.uint16)).dtype == np.float32


def test_s1_endpoints_and_clipping():
    db = torch.tensor([-40.0, -25.0, -12.5, 0.0, 3.0])
    torch.testing.assert_close(s1_to_model(db), torch.tensor([-1.0, -1.0, 0.0, 1.0, 1.0]))


@given(st.floats(0, 10000))
def test_s2_round_trip(v):
    assert float(s2_from_model(s2_to_model(np.array([v])))[0]) == pytest.approx(v, abs=1e-2)


@given(st.floats(-25, 0))
def test_s1_round_trip(v):
    assert float(
        s1_from_model(s1_to_model(torch.tensor([v], dtype=torch.float64)))[0]
    ) == pytest.approx(v, abs=1e-9)


def test_inverse_clips_model_values():
    np.testing.assert_allclose(s2_from_model(np.array([-3.0, 3.0])), [0, 10000])


def test_torch_scales_every_dn_and_db_to_the_bit_numpy_gives() -> None:
    """The pipeline scales tiles on the network's device; the CPU must give numpy's values."""
    dn = np.arange(2**16, dtype=np.uint16)  # every DN there is
    np.testing.assert_array_equal(s2_to_model(torch.from_numpy(dn)).numpy(), s2_to_model(dn))
    rng = np.random.default_rng(0)
    db = rng.normal(-12.0, 10.0, 1_000_000).astype(np.float32)
    db[::97] = np.nan
    np.testing.assert_array_equal(s1_to_model(torch.from_numpy(db)).numpy(), s1_to_model(db))
    x = rng.uniform(-1.5, 1.5, 1_000_000).astype(np.float32)
    np.testing.assert_array_equal(s2_from_model(torch.from_numpy(x)).numpy(), s2_from_model(x))

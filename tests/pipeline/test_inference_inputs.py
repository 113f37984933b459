"""A tile's model inputs and clear-pixel mean equal their float64 / numpy definitions, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from clearcube.model.data.normalize import s1_to_model, s2_to_model
from clearcube.pipeline.inference import TileInputs, _clear_mean, _model_inputs
from clearcube.pipeline.tiles import Tile


def _tile(h: int, w: int, dates: int, seed: int = 0) -> TileInputs:
    rng = np.random.default_rng(seed)
    s2 = rng.integers(0, 2**16, size=(dates, 13, h, w)).astype(np.uint16)  # every DN, 0 included
    s1 = rng.uniform(-30.0, 3.0, size=(dates, 2, h, w)).astype(np.float32)
    s1[rng.random(s1.shape) < 0.25] = np.nan
    known = rng.random((dates, h, w)) > 0.5
    return TileInputs(s2, s1, known, Tile((0, 0), 0, 0, h, w))


@pytest.mark.parametrize("dates", [1, 2, 3, 7])
def test_the_clear_mean_is_the_float64_mean_rounded_once(dates: int) -> None:
    item = _tile(24, 20, dates, seed=dates)
    item.s2[:, :, :2] = 2**16 - 1  # the largest sums
    mean, seen = _clear_mean(item.s2, item.known)
    count = item.known.sum(axis=0)
    total = np.einsum("lchw,lhw->chw", item.s2.astype(np.float64), item.known.astype(np.float64))
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(mean, (total / np.maximum(count, 1)).astype(np.float32))
    np.testing.assert_array_equal(seen, count > 0)


@pytest.mark.parametrize(("h", "w"), [(32, 32), (30, 27), (5, 6)])
def test_model_inputs_are_the_numpy_scaling_of_the_padded_tile(h: int, w: int) -> None:
    """Reflected into the padding (marked unknown), scaled, SAR gaps from the dates' mean."""
    item, multiple = _tile(h, w, 3), 8
    observed, sar, known = (t.numpy() for t in _model_inputs(item, multiple, "cpu"))
    pad = ((0, 0), (0, 0), (0, -h % multiple), (0, -w % multiple))
    want_s2 = s2_to_model(np.pad(item.s2, pad, mode="reflect").astype(np.float32))
    s1 = s1_to_model(np.pad(item.s1, pad, mode="reflect"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(s1, axis=0, keepdims=True)
    want_s1 = np.nan_to_num(np.where(np.isnan(s1), mean, s1), nan=0.0)
    assert observed.shape == (3, 13, h + -h % multiple, w + -w % multiple)
    np.testing.assert_array_equal(observed, want_s2)
    np.testing.assert_array_equal(sar, want_s1)
    np.testing.assert_array_equal(known, np.pad(item.known, pad[1:]))
    assert not known[:, h:].any() and not known[:, :, w:].any()


def test_float_dn_go_to_the_network_as_float32() -> None:
    """``sample_tile`` takes DN of any dtype; the network's inputs are float32 all the same."""
    item = _tile(16, 16, 2)
    as_float = TileInputs(item.s2.astype(np.float64), item.s1, item.known, item.tile)
    want, got = _model_inputs(item, 8, "cpu")[0], _model_inputs(as_float, 8, "cpu")[0]
    assert got.dtype == want.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), want.numpy())

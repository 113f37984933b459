"""Training samples from a clearcube-shaped cube: clear targets, real clouds, synthetic overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from clearcube import BadInputError
from clearcube.bands import S1_BANDS, S2_BANDS
from clearcube.model.data.cube_dataset import CubeDataset
from clearcube.model.data.normalize import s2_to_model


def _cube(n_t: int = 5, size: int = 40) -> xr.Dataset:
    rng = np.random.default_rng(0)
    s2 = rng.integers(100, 3000, size=(n_t, 13, size, size)).astype(np.uint16)
    s2 += (np.arange(n_t) * 1000).astype(np.uint16)[:, None, None, None]  # date t ~ t*1000 DN
    s1 = rng.uniform(-20, -5, size=(n_t, 2, size, size)).astype(np.float32)
    cloud = np.zeros((n_t, size, size), dtype=bool)
    cloud[1, :20] = True  # half cloudy
    cloud[2] = True  # overcast
    cloud[4, :, :10] = True  # a quarter cloudy
    return xr.Dataset(
        {
            "s2": (("time", "band", "y", "x"), s2),
            "s1": (("time", "s1_band", "y", "x"), s1),
            "cloud": (("time", "y", "x"), cloud),
        },
        coords={"band": list(S2_BANDS), "s1_band": list(S1_BANDS)},
    )


def test_targets_are_clear_dates_and_inputs_keep_their_clouds():
    cube = _cube()
    ds = CubeDataset(
        cube, seq_len=3, patch_size=16, clear_threshold=0.05, samples_per_date=4, seed=1
    )
    assert list(ds.clear_dates) == [0, 3] and len(ds) == 8
    for i in range(len(ds)):
        s = ds[i]
        assert s["target_s2"].shape == (13, 16, 16) and s["inputs_s2"].shape == (3, 13, 16, 16)
        assert s["known"].shape == (3, 16, 16) and s["known"].dtype.is_floating_point is False
        target_dn = (s["target_s2"].numpy() + 1) * 5000
        date = round(float(np.median(target_dn)) / 1000 - 1.5)  # ~ t*1000 + 1550
        assert date in (0, 3)
        # every input pixel of the overcast date 2 is unknown; fully clear dates are fully known
        input_dates = np.round(
            np.median((s["inputs_s2"].numpy() + 1) * 5000, axis=(1, 2, 3)) / 1000 - 1.5
        )
        for d, known in zip(input_dates.astype(int), s["known"].numpy(), strict=True):
            assert d != date
            if d == 2:
                assert not known.any()
            if d in (0, 3):
                assert known.all()


def test_same_seed_same_samples_and_other_seed_differs():
    a = CubeDataset(_cube(), patch_size=16, seed=5)
    b = CubeDataset(_cube(), patch_size=16, seed=5)
    c = CubeDataset(_cube(), patch_size=16, seed=6)
    for key in ("target_s2", "inputs_s2", "known"):
        assert (a[3][key] == b[3][key]).all()
    assert not all(bool((a[i]["target_s2"] == c[i]["target_s2"]).all()) for i in range(4))


def test_synthetic_inputs_are_the_target_under_other_clouds():
    cube = _cube()
    ds = CubeDataset(cube, seq_len=2, patch_size=16, synthetic_prob=1.0, seed=2)
    for i in range(6):
        s = ds[i]
        known = s["known"].numpy()
        target = s["target_s2"].numpy()
        inputs = s["inputs_s2"].numpy()
        np.testing.assert_array_equal(
            inputs[:, :, known.all(0)],
            np.broadcast_to(target[:, known.all(0)], inputs[:, :, known.all(0)].shape),
        )
        for i in range(2):
            assert np.all(inputs[i][:, known[i]] == target[:, known[i]])
        assert (s["inputs_s1"] == s["target_s1"][None]).all()


def test_held_out_x_range_and_errors():
    cube = _cube(size=40)
    val = CubeDataset(cube, patch_size=8, x_range=(0.8, 1.0))
    assert val.s2.shape[-1] == 8
    # the crop comes from the last 8 columns (x 32..39) of a clear date, at some row offset
    crop = val[0]["target_s2"].numpy()
    columns = s2_to_model(cube["s2"].values[val.clear_dates[0], :, :, 32:40])
    assert any(np.array_equal(crop, columns[:, y0 : y0 + 8]) for y0 in range(33))
    with pytest.raises(BadInputError, match="smaller than patch_size"):
        CubeDataset(cube, patch_size=16, x_range=(0.8, 1.0))
    with pytest.raises(BadInputError, match="cloud fraction"):
        CubeDataset(cube.assign(cloud=cube["cloud"] | True), patch_size=8)


def test_sar_dropout_blanks_the_sar_of_its_share_of_samples_and_keeps_the_rest():
    cube = _cube()
    common = {"seq_len": 3, "patch_size": 16, "samples_per_date": 100, "seed": 3}
    plain = CubeDataset(cube, **common)
    dropped = CubeDataset(cube, sar_dropout=0.25, **common)
    blank = 0
    for i in range(len(plain)):
        a, b = plain[i], dropped[i]
        for key in ("target_s2", "inputs_s2", "known"):
            assert torch.equal(a[key], b[key]), key  # the draw comes last: nothing else moves
        if torch.equal(b["inputs_s1"], a["inputs_s1"]):
            assert torch.equal(b["target_s1"], a["target_s1"])
        else:
            # no SAR: 0 everywhere, the value the pipeline feeds where no date has an S1 pair
            assert not b["inputs_s1"].any() and not b["target_s1"].any()
            blank += 1
    # 200 samples at p = 0.25: 50 expected, binomial std 6.1
    assert 25 <= blank <= 75
    assert all(
        CubeDataset(cube, sar_dropout=1.0, **common)[i]["inputs_s1"].abs().sum() == 0
        for i in range(5)
    )

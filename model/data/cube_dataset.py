"""Training samples cut from a clearcube Zarr cube, so users can fit the model to their own region.

The cube holds ``s2`` (time, band, y, x) L1C DN, ``s1`` (time, s1_band, y, x) dB on the S2 time
axis, and optionally ``cloud`` (time, y, x) bool (True = cloud); without it, clouds come from
s2cloudless. Dates whose cloud fraction (over the usable x range) is at most ``clear_threshold``
are targets. Each sample is a random ``patch_size`` crop of one target date plus ``seq_len``
other dates with their real clouds; with probability ``synthetic_prob`` the inputs are instead
the target date itself under other dates' clouds (cloudy pixels take the other date's values),
which gives exact ground truth under real cloud shapes. With probability ``sar_dropout`` a
sample has no SAR at all (every SAR value at 0, the middle of the model's range, which is what
the pipeline feeds where no date has a Sentinel-1 pair: optical-only catalogs), so one network
fills with and without SAR. Sample ``i`` depends only on
``(seed, i)``: the dataset is deterministic and safe with several loader workers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from clearcube import BadInputError
from clearcube.model.data.clouds import s2cloudless_cloud
from clearcube.model.data.normalize import s1_to_model, s2_to_model


class CubeDataset(Dataset[dict[str, torch.Tensor]]):
    """SeqDMs samples (see :mod:`clearcube.model.data`) from an S1/S2 cube."""

    def __init__(
        self,
        cube: Any,
        *,
        seq_len: int = 3,
        patch_size: int = 64,
        clear_threshold: float = 0.05,
        synthetic_prob: float = 0.0,
        samples_per_date: int = 16,
        x_range: tuple[float, float] = (0.0, 1.0),
        s2_bands: Sequence[str] | None = None,
        seed: int = 0,
        sar_dropout: float = 0.0,
    ):
        """Prepare the cube.

        Args:
            cube: an ``xarray.Dataset`` or the path of a Zarr store.
            seq_len: L, input dates per sample.
            patch_size: P, crop size in pixels.
            clear_threshold: largest cloud fraction of a target date.
            synthetic_prob: probability of a sample made of the target under other dates' clouds.
            samples_per_date: crops per target date in one pass over the dataset.
            x_range: the fraction of the x extent used, e.g. (0, 0.8) to train and (0.8, 1) to
                validate on disjoint pixels.
            s2_bands: bands to use, in order (default: the cube's ``band`` coordinate).
            seed: base of every random choice.
            sar_dropout: probability of a sample without SAR (all SAR values 0).
        """
        if isinstance(cube, str | os.PathLike):
            cube = xr.open_zarr(cube)
        for var in ("s2", "s1"):
            if var not in cube:
                raise BadInputError(
                    f"cube has no {var!r} variable (has {sorted(cube.data_vars)}); "
                    "build it with `clearcube cube` so it holds s2 and s1"
                )
        s2 = cube["s2"]
        if s2_bands is not None:
            s2 = s2.sel(band=list(s2_bands))
        width = s2.sizes["x"]
        x0, x1 = round(x_range[0] * width), round(x_range[1] * width)
        if s2.sizes["y"] < patch_size or x1 - x0 < patch_size:
            raise BadInputError(
                f"cube region {s2.sizes['y']}x{x1 - x0} px is smaller than patch_size {patch_size}; "
                "use a smaller patch_size or a larger cube"
            )
        self.band_names = tuple(str(b) for b in s2["band"].values)
        self.s1_band_names = tuple(str(b) for b in cube["s1"][cube["s1"].dims[1]].values)
        # Cubes for training are regional; holding them in memory keeps sampling fast.
        self.s2 = np.asarray(s2.isel(x=slice(x0, x1)).values)
        self.s1 = np.asarray(cube["s1"].isel(x=slice(x0, x1)).values, dtype=np.float32)
        if "cloud" in cube:
            cloud = np.asarray(cube["cloud"].isel(x=slice(x0, x1)).values, dtype=bool)
        else:
            cloud = s2cloudless_cloud(self.s2, self.band_names)
        nodata = ~np.any(self.s2 > 0, axis=1)
        self.cloud = cloud | nodata
        fraction = self.cloud.mean(axis=(1, 2))
        self.clear_dates = np.flatnonzero(fraction <= clear_threshold)
        if len(self.clear_dates) == 0:
            raise BadInputError(
                f"no date of the cube has a cloud fraction <= {clear_threshold} "
                f"(least cloudy: {fraction.min():.2f}); raise clear_threshold or widen the dates"
            )
        if self.s2.shape[0] < 2:
            raise BadInputError("the cube has a single date; training needs at least two")
        self.seq_len = seq_len
        self.patch_size = patch_size
        self.synthetic_prob = synthetic_prob
        self.samples_per_date = samples_per_date
        self.seed = seed
        self.sar_dropout = sar_dropout

    def __len__(self) -> int:
        return len(self.clear_dates) * self.samples_per_date

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        target = int(self.clear_dates[index % len(self.clear_dates)])
        n_t, _, height, width = self.s2.shape
        p = self.patch_size
        y0 = int(rng.integers(0, height - p + 1))
        x0 = int(rng.integers(0, width - p + 1))
        window = (slice(y0, y0 + p), slice(x0, x0 + p))
        others = np.array([t for t in range(n_t) if t != target])
        picked = np.sort(rng.choice(others, size=self.seq_len, replace=len(others) < self.seq_len))

        target_s2 = self.s2[(target, slice(None), *window)]
        target_s1 = self.s1[(target, slice(None), *window)]
        cloud = self.cloud[(picked, *window)]
        if rng.random() < self.synthetic_prob:
            # The target seen through other dates' clouds: cloudy pixels carry those dates' values.
            other_s2 = self.s2[(picked, slice(None), *window)]
            inputs_s2 = np.where(cloud[:, None], other_s2, target_s2[None])
            inputs_s1 = np.repeat(target_s1[None], self.seq_len, axis=0)
        else:
            inputs_s2 = self.s2[(picked, slice(None), *window)]
            inputs_s1 = self.s1[(picked, slice(None), *window)]
        if self.sar_dropout and rng.random() < self.sar_dropout:  # drawn last: keeps the rest
            target_s1 = np.full_like(target_s1, np.nan)
            inputs_s1 = np.full_like(inputs_s1, np.nan)
        return {
            "target_s2": torch.from_numpy(s2_to_model(target_s2)),
            "target_s1": torch.from_numpy(np.nan_to_num(s1_to_model(target_s1))),
            "inputs_s2": torch.from_numpy(s2_to_model(inputs_s2)),
            "inputs_s1": torch.from_numpy(np.nan_to_num(s1_to_model(inputs_s1))),
            "known": torch.from_numpy(~cloud),
            # the target's own clear pixels: a target date may be up to clear_threshold cloudy,
            # and a cloudy target pixel is no truth to score a fill against
            "target_known": torch.from_numpy(~self.cloud[(target, *window)]),
        }

"""SEN12MS-CR-TS reader: per-date Sentinel-1/2 GeoTIFFs of 256x256 patches, 30 dates per ROI.

The dataset's layout (Ebel et al., 2022)::

    ROOT/ROIs1868/21/S1/0/s1_ROIs1868_21_ImgNo_0_2018-01-06_patch_30.tif   (2 bands, dB)
    ROOT/ROIs1868/21/S2/0/s2_ROIs1868_21_ImgNo_0_2018-01-03_patch_30.tif   (13 bands, L1C DN)
                      ^ tile  ^ date index                       ^ patch number

A sample is one patch: its least cloudy date (s2cloudless, the paper's settings) is the target,
and the ``seq_len`` other dates nearest to it in time are the cloudy inputs. Masks are cached
as ``<s2 file>.s2cloudless.npy`` beside the data when the folder is writable.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import rasterio
import torch
from torch.utils.data import Dataset

from clearcube import BadInputError
from clearcube.model.data.clouds import s2cloudless_cloud
from clearcube.model.data.normalize import s1_to_model, s2_to_model

log = logging.getLogger(__name__)

#: The official SEN12MS-CR-TS test ROIs (across continents); every other ROI is training data.
TEST_ROIS: Final[frozenset[str]] = frozenset(
    {
        "ROIs1868/119", "ROIs1970/139", "ROIs2017/108", "ROIs2017/63", "ROIs1158/106",
        "ROIs1868/73", "ROIs2017/32", "ROIs1868/100", "ROIs1970/132", "ROIs2017/103",
        "ROIs1868/142", "ROIs1970/20", "ROIs2017/140",
    }
)  # fmt: skip

_FILE = re.compile(
    r"^(?P<sensor>s[12])_(?P<roi>ROIs\d+)_(?P<tile>\d+)_ImgNo_(?P<t>\d+)_"
    r"(?P<date>\d{4}-\d{2}-\d{2})_patch_(?P<patch>\d+)\.tif$"
)


@dataclass(frozen=True)
class PatchSeries:
    """All dates of one patch that have both a Sentinel-1 and a Sentinel-2 file."""

    roi: str
    """ROI and tile, e.g. ``"ROIs1868/21"``."""
    patch: int
    """Patch number within the tile."""
    s1: tuple[Path, ...]
    """Sentinel-1 files, one per date, in date-index order."""
    s2: tuple[Path, ...]
    """Sentinel-2 files, aligned with ``s1``."""
    dates: tuple[str, ...]
    """Sentinel-2 acquisition dates (ISO), aligned with ``s2``."""


def index_sen12mscrts(
    root: str | os.PathLike[str], rois: Sequence[str] | None = None
) -> list[PatchSeries]:
    """Find every patch series under ``root`` (optionally only the ROIs ``"ROIsNNNN/tile"`` given)."""
    root = Path(root)
    series: list[PatchSeries] = []
    for roi_dir in sorted(p for p in root.glob("ROIs*/*") if p.is_dir()):
        roi = f"{roi_dir.parent.name}/{roi_dir.name}"
        if rois is not None and roi not in rois:
            continue
        found: dict[int, dict[int, dict[str, tuple[Path, str]]]] = {}
        for sensor in ("S1", "S2"):
            for f in (roi_dir / sensor).glob("*/*.tif"):
                m = _FILE.match(f.name)
                if m is None:
                    continue
                by_t = found.setdefault(int(m["patch"]), {}).setdefault(int(m["t"]), {})
                by_t[m["sensor"]] = (f, m["date"])
        for patch, files_at in sorted(found.items()):
            ts = sorted(t for t, files in files_at.items() if {"s1", "s2"} <= files.keys())
            if ts:
                series.append(
                    PatchSeries(
                        roi=roi,
                        patch=patch,
                        s1=tuple(files_at[t]["s1"][0] for t in ts),
                        s2=tuple(files_at[t]["s2"][0] for t in ts),
                        dates=tuple(files_at[t]["s2"][1] for t in ts),
                    )
                )
    return series


class Sen12mscrtsDataset(Dataset[dict[str, torch.Tensor]]):
    """Patches of SEN12MS-CR-TS as SeqDMs training samples (see :mod:`clearcube.model.data`)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: Literal["all", "train", "test"] = "all",
        seq_len: int = 3,
        rois: Sequence[str] | None = None,
        cache_masks: bool = True,
    ):
        """Index the dataset.

        Args:
            root: the folder holding ``ROIs1158``, ``ROIs1868``, ...
            split: "train" leaves out :data:`TEST_ROIS`, "test" keeps only them, "all" keeps all.
            seq_len: L, the number of cloudy input dates per sample.
            rois: restrict to these ``"ROIsNNNN/tile"`` names.
            cache_masks: write/read s2cloudless masks as ``.npy`` beside the S2 files.
        """
        if seq_len < 1:
            raise BadInputError(f"seq_len must be >= 1, got {seq_len}")
        self.seq_len = seq_len
        self.cache_masks = cache_masks
        series = index_sen12mscrts(root, rois)
        if split == "train":
            series = [s for s in series if s.roi not in TEST_ROIS]
        elif split == "test":
            series = [s for s in series if s.roi in TEST_ROIS]
        elif split != "all":
            raise BadInputError(f"split {split!r} unknown; use 'all', 'train' or 'test'")
        self.series = [s for s in series if len(s.s2) > seq_len]
        if not self.series:
            raise BadInputError(
                f"no SEN12MS-CR-TS patch with more than {seq_len} dates under {root} (split {split}); "
                "expected ROIsNNNN/<tile>/S1|S2/<t>/s1|s2_ROIsNNNN_<tile>_ImgNo_<t>_<date>_patch_<n>.tif"
            )

    def __len__(self) -> int:
        return len(self.series)

    def cloud(self, s2_path: Path, dn: np.ndarray) -> np.ndarray:
        """s2cloudless mask (H, W), True = cloud, of one date, from the cache when present."""
        cache = s2_path.with_name(s2_path.name + ".s2cloudless.npy")
        if self.cache_masks and cache.is_file():
            cached: np.ndarray = np.load(cache)
            return cached
        cloud: np.ndarray = s2cloudless_cloud(dn)
        if self.cache_masks:
            try:
                tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp.npy")
                np.save(tmp, cloud)
                os.replace(tmp, cache)
            except OSError as exc:  # read-only dataset copy: keep going without a cache
                log.debug("cannot cache cloud mask at %s: %s", cache, exc)
        return cloud

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s = self.series[index]
        s2 = np.stack([_read(p) for p in s.s2])  # (T, 13, H, W) DN
        s1 = np.stack([_read(p) for p in s.s1])  # (T, 2, H, W) dB
        cloud = np.stack([self.cloud(p, img) for p, img in zip(s.s2, s2, strict=True)])
        target, inputs = pick_target_and_inputs(cloud.mean(axis=(1, 2)), self.seq_len)
        return {
            "target_s2": torch.from_numpy(s2_to_model(s2[target])),
            "target_s1": torch.from_numpy(np.nan_to_num(s1_to_model(s1[target]))),
            "inputs_s2": torch.from_numpy(s2_to_model(s2[inputs])),
            "inputs_s1": torch.from_numpy(np.nan_to_num(s1_to_model(s1[inputs]))),
            "known": torch.from_numpy(~cloud[inputs]),
        }


def pick_target_and_inputs(cloud_fraction: np.ndarray, seq_len: int) -> tuple[int, list[int]]:
    """Pick the target and the input dates of one series.

    Target = least cloudy date (earliest on ties); inputs = the ``seq_len`` other dates nearest
    to it in the date index (earlier first on ties), returned in time order.
    """
    target = int(np.argmin(cloud_fraction))
    others = sorted(
        (i for i in range(len(cloud_fraction)) if i != target), key=lambda i: (abs(i - target), i)
    )
    return target, sorted(others[:seq_len])


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        data: np.ndarray = src.read()
        return data

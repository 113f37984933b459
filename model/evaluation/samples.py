"""The evaluation sample, and a folder format for evaluation sets (one ``.npz`` per sample).

A *cube-derived evaluation set* is any folder of such ``.npz`` files: a cube or a dataset reader
writes them with :func:`save_samples`, ``clearcube evaluate --data FOLDER`` reads them back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clearcube import BadInputError


@dataclass(frozen=True, eq=False)
class EvalSample:
    """One cloud-removal problem: a cloudy input sequence and its cloud-free target."""

    name: str
    """Unique, file-name-safe identifier."""
    inputs: np.ndarray
    """(L, C, H, W) float32 optical input dates, reflectance on [0, 1]."""
    cloud: np.ndarray
    """(L, H, W) bool, True = cloud in that input date."""
    target: np.ndarray
    """(C, H, W) float32 cloud-free target on [0, 1]."""
    sar: np.ndarray | None = None
    """(L, 2, H, W) float32 VV, VH backscatter in dB per input date, or None."""
    target_in_inputs: bool = False
    """True when the target date itself is one of the (cloud-covered) input dates."""
    source: str = ""
    """Where the sample comes from (e.g. ``"sen1floods11"``, ``"eolearn"``)."""
    meta: dict[str, str] = field(default_factory=dict)
    """Free-form provenance (dates, crop window, mask dates)."""

    def __post_init__(self) -> None:
        length, _, h, w = self.inputs.shape
        if self.cloud.shape != (length, h, w) or self.target.shape != self.inputs.shape[1:]:
            raise BadInputError(
                f"sample {self.name}: inputs {self.inputs.shape}, cloud {self.cloud.shape} and "
                f"target {self.target.shape} disagree; expected (L,C,H,W), (L,H,W), (C,H,W)"
            )
        if self.sar is not None and self.sar.shape != (length, 2, h, w):
            raise BadInputError(
                f"sample {self.name}: sar is {self.sar.shape}, expected {(length, 2, h, w)}"
            )

    @property
    def length(self) -> int:
        """Number of input dates L."""
        return int(self.inputs.shape[0])

    @property
    def cloud_coverage(self) -> float:
        """Mean over the input dates of each date's cloudy fraction (the paper's Table 3)."""
        return float(self.cloud.mean())


def save_samples(samples: Iterable[EvalSample], folder: str | os.PathLike[str]) -> list[Path]:
    """Write each sample to ``folder/<name>.npz`` (compressed) and return the paths."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in samples:
        arrays = {"inputs": s.inputs, "cloud": s.cloud, "target": s.target}
        if s.sar is not None:
            arrays["sar"] = s.sar
        info = {"target_in_inputs": s.target_in_inputs, "source": s.source, "meta": s.meta}
        path = root / f"{s.name}.npz"
        arrays["info"] = np.array(json.dumps(info))
        np.savez_compressed(path, allow_pickle=False, **arrays)
        paths.append(path)
    return paths


def load_samples(folder: str | os.PathLike[str]) -> Iterator[EvalSample]:
    """Read the ``.npz`` samples of ``folder`` in name order (inputs are checked to be in [0, 1])."""
    root = Path(folder)
    paths = sorted(root.glob("*.npz"))
    if not paths:
        raise BadInputError(f"no .npz evaluation samples in {root}; write some with save_samples()")
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"])) if "info" in z else {}
            sample = EvalSample(
                name=path.stem,
                inputs=z["inputs"].astype(np.float32),
                cloud=z["cloud"].astype(bool),
                target=z["target"].astype(np.float32),
                sar=z["sar"].astype(np.float32) if "sar" in z else None,
                target_in_inputs=bool(info.get("target_in_inputs", False)),
                source=str(info.get("source", root.name)),
                meta=dict(info.get("meta", {})),
            )
        if np.nanmax(sample.target) > 1.5:
            raise BadInputError(
                f"{path}: target values reach {np.nanmax(sample.target):.0f}; scale reflectance to [0, 1] (divide DN by 10000)"
            )
        yield sample

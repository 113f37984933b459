"""The "fitted" evaluation method: the model fitted to the evaluation region, cross-fitted.

What a user does in their own region (``clearcube fit``), measured without ever training on a
pixel that a scored sample hides. The protocol, exactly:

* Only samples with a spatial tile grid take part (Sen1Floods11: 128 px tiles of one scene,
  each tile under L = 3, 4, 5 sets of real masks). Other sources (eo-learn, one small area, no
  SAR) get no fitted prediction (NaN, left out of the means; the row's ``n`` says how many).
* The tiles are split into two folds like a chessboard (by ``(row + col) / patch`` parity);
  every L-variant of a tile sits in its tile's fold.
* For each fold, the base checkpoint is fine-tuned on the *other* fold's samples, using only
  the pixels their inputs show as clear (clear in at least one input date; the per-pixel loss
  weight is 0 elsewhere, and those pixels are filled with the band means so no hidden value
  enters the network either). The target date's pixels hidden in every input of a training
  sample are therefore never seen, and a scored sample's tile is never seen at all.
* Each sample is then filled by the model fitted on the other fold, with the same sampler
  settings as the ``model`` method.

This is the one use of the evaluation-only Sen1Floods11 scene for training that
``../shared/data/README.md`` allows: the per-region fit protocol, labelled "fitted".
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from clearcube.model.checkpoint import load_checkpoint, read_checkpoint
from clearcube.model.config import ModelConfig
from clearcube.model.data.normalize import s1_to_model
from clearcube.model.evaluation.model_method import fill_sample
from clearcube.model.evaluation.runner import Method
from clearcube.model.evaluation.samples import EvalSample
from clearcube.model.train import train
from clearcube.model.train_config import TrainConfig

log = logging.getLogger(__name__)


def tile_fold(sample: EvalSample) -> int | None:
    """0 or 1 for a sample with a ``window`` "row,col,patch" in its meta; None otherwise."""
    window = sample.meta.get("window")
    if not window or sample.sar is None:
        return None
    row, col, patch = (int(v) for v in window.split(","))
    return (row // patch + col // patch) % 2


class ClearPixels(Dataset[dict[str, torch.Tensor]]):
    """Training crops of the pixels a set of samples' inputs show as clear (loss weight 1)."""

    def __init__(self, samples: Sequence[EvalSample], *, patch: int = 64, n: int = 4096,
                 seed: int = 0):  # fmt: skip
        self.items = []
        for s in samples:
            seen = np.asarray(~s.cloud.all(axis=0), dtype=bool)  # clear in at least one input date
            first = np.argmax(~s.cloud, axis=0)  # the first input date showing each pixel
            value = np.take_along_axis(s.inputs, first[None, None], axis=0)[0]  # (C, H, W)
            mean = value[:, seen].mean(axis=1) if seen.any() else np.full(value.shape[0], 0.5)
            value = np.where(seen[None], value, mean[:, None, None]).astype(np.float32)
            sar = np.nan_to_num(s1_to_model(s.sar[0])).astype(np.float32)  # type: ignore[index]
            self.items.append((value * 2.0 - 1.0, sar, seen))
        self.patch, self.n, self.seed = patch, n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, i])
        value, sar, seen = self.items[int(rng.integers(len(self.items)))]
        h, w = seen.shape
        y, x = int(rng.integers(0, h - self.patch + 1)), int(rng.integers(0, w - self.patch + 1))
        win = (slice(y, y + self.patch), slice(x, x + self.patch))
        k, flip = int(rng.integers(4)), bool(rng.integers(2))

        def aug(a: np.ndarray) -> torch.Tensor:
            a = np.rot90(a[(..., *win)], k, axes=(-2, -1))
            return torch.from_numpy(np.ascontiguousarray(a[..., ::-1] if flip else a))

        target, cond, weight = aug(value), aug(sar), aug(seen[None].astype(np.float32))
        return {
            "target_s2": target, "target_s1": cond, "weight": weight,
            "inputs_s2": target[None], "inputs_s1": cond[None], "known": weight.bool(),
        }  # fmt: skip


def fitted_method(
    checkpoint: str,
    samples: Sequence[EvalSample],
    *,
    sampler: str = "ddim",
    steps: int = 50,
    seed: int = 0,
    device: str = "cpu",
    fit_steps: int = 300,
    draws: int = 1,
) -> Method:
    """Cross-fit ``checkpoint`` on the two tile folds of ``samples``; return the method.

    Each fill is the mean of ``draws`` SeqTIS samples (K, as the pipeline's composite).
    """
    folds: dict[int, list[EvalSample]] = {0: [], 1: []}
    for s in samples:
        fold = tile_fold(s)
        if fold is not None:
            folds[fold].append(s)
    models = {}
    cfg = ModelConfig.from_dict(read_checkpoint(checkpoint)["config"])
    with tempfile.TemporaryDirectory(prefix="clearcube-fitted-") as tmp:
        for fold in (0, 1):
            others = folds[1 - fold]
            if not others:
                continue
            train_cfg = TrainConfig(
                model=cfg, steps=fit_steps, batch_size=8, lr=2e-4, ema_rate=0.99,
                temporal_weight=0.0, checkpoint_every=fit_steps, validate_every=0,
                log_every=max(1, fit_steps // 5), out_dir=str(Path(tmp) / f"fold{fold}"),
                init=checkpoint, seed=seed, device=device,
            )  # fmt: skip
            log.info("fitted: fold %d from %d samples of the other fold", fold, len(others))
            last = train(train_cfg, datasets=(ClearPixels(others, seed=seed), None))
            models[fold] = load_checkpoint(last, device=device)[:2]

    def run(sample: EvalSample) -> np.ndarray:
        fold = tile_fold(sample)
        if fold is None or fold not in models:
            return np.full(sample.target.shape, np.nan)  # not part of the protocol
        net, cfg = models[fold]
        return fill_sample(
            net, cfg, sample, sampler=sampler, steps=steps, seed=seed, device=device,
            samples=draws,
        )  # fmt: skip

    run.__name__ = "fitted"
    return run

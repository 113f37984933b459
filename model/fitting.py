"""Fit a checkpoint to the user's own region: self-supervised fine-tuning on their cube.

No public training set matches every region's land cover, season and SAR response; the
region's own clear pixels do. :func:`fit` fine-tunes a checkpoint on a clearcube cube:

* targets are the cube's clear dates (cloud fraction ≤ ``clear_threshold``); inputs are other
  dates with their real clouds, or (half the samples) the target itself under other dates'
  real cloud masks, so every gap has exact ground truth; the SAR of the same dates is the
  condition (:class:`~clearcube.model.data.cube_dataset.CubeDataset`). The loss is the clean
  pair's (Eq. 27) plus the multi-date step in its consistent form (x̂_0 of the fused input
  against the target), which trains the very task the held-out figure measures;
* a fixed share of the region, the last ``held_out`` fraction of its columns, is held out:
  no training crop touches it. Before and after training the same held-out samples (a clear
  target, real cloudy inputs) are filled with SeqTIS and scored by RMSE over the pixels cloudy
  in every input (the only pixels the model generates; the others are the clear dates' mean
  by Eq. 26 whatever the weights). The fitted checkpoint records both figures.

The model's config (network, diffusion settings, scaling) is the base checkpoint's: fitting
changes weights only, so everything that reads a checkpoint reads a fitted one unchanged.

    fit(cube, checkpoint, out) -> FitResult
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
import zarr

from clearcube import CUBE_MASK_ATTR, BadInputError
from clearcube.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from clearcube.model.config import ModelConfig
from clearcube.model.data.clouds import s2cloudless_cloud
from clearcube.model.data.cube_dataset import CubeDataset
from clearcube.model.fill import fill_gaps
from clearcube.model.train import torch_device, train
from clearcube.model.train_config import TrainConfig

log = logging.getLogger(__name__)

#: ``progress(phase, done, total)``: phase is "before", "train" or "after".
FitProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did and measured."""

    path: Path
    """The fitted checkpoint."""
    rmse_before: float
    """RMSE (reflectance) of the base checkpoint on the held-out generated pixels."""
    rmse_after: float
    """The same for the fitted checkpoint (same samples, same noise)."""
    held_out_samples: int
    """Held-out samples scored (each a clear target with real cloudy inputs)."""
    held_out_pixels: int
    """Pixels scored over all samples (cloudy in every input of their sample)."""
    steps: int
    """Optimiser steps of the fine-tuning."""
    seconds: float
    """Wall time of the whole fit."""


def fit(
    cube: str | Path | xr.Dataset,
    checkpoint: str | Path,
    out: str | Path,
    *,
    steps: int = 400,
    batch_size: int = 8,
    patch_size: int = 64,
    lr: float = 1e-4,
    held_out: float = 0.15,
    seq_len: int = 3,
    clear_threshold: float = 0.05,
    eval_samples: int = 24,
    eval_steps: int = 10,
    temporal_weight: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    progress: FitProgress | None = None,
) -> FitResult:
    """Fine-tune ``checkpoint`` on ``cube`` and write the fitted checkpoint to ``out``.

    Args:
        cube: a clearcube cube (Zarr path or Dataset) with ``s2`` DN and ``s1`` dB; dates
            without a stored cloud mask are masked with s2cloudless here.
        checkpoint: the base checkpoint.
        out: where the fitted checkpoint goes (written atomically).
        steps: optimiser steps of the fine-tuning run.
        batch_size: samples per step.
        patch_size: crop size of the training samples in pixels.
        lr: AdamW learning rate.
        held_out: fraction of the region's columns (at its east edge) never trained on.
        seq_len: input dates per training sample.
        clear_threshold: largest cloud fraction of a target date.
        eval_samples: held-out samples scored before and after.
        eval_steps: DDIM steps of the held-out fills.
        temporal_weight: weight of the multi-date step (the consistent Eq. 28: fill the target
            from the other dates' clear pixels and SAR, scored in x̂_0 space) beside Eq. 27.
        seed: data order, crops, noise.
        device: "auto", "cpu", "cuda"...
        progress: ``progress(phase, done, total)``.

    Raises:
        BadInputError: the cube has no clear date, is too small for the held-out strip, or
            does not carry the checkpoint's bands.
    """
    start = time.perf_counter()
    if not 0.0 < held_out < 0.5:
        raise BadInputError(f"fit: held_out must be in (0, 0.5), got {held_out}")
    if not lr > 0 or steps < 1 or batch_size < 1:
        raise BadInputError("fit: lr must be > 0 and steps, batch_size >= 1")
    dev = torch_device(device, command="fit")
    base_net, cfg, meta = load_checkpoint(checkpoint)
    if cfg.is_consistency:
        raise BadInputError(
            f"fit: {checkpoint} is a consistency student; fit its teacher (a diffusion "
            "checkpoint, e.g. model/checkpoints/demo.pt), then distill the fitted model"
        )
    multiple = cfg.unet.size_multiple
    if patch_size < multiple or patch_size % multiple:
        raise BadInputError(
            f"fit: patch_size {patch_size} must be a positive multiple of {multiple} for this "
            f"checkpoint; pass e.g. --patch-size 64"
        )
    if cfg.diffusion.prediction == "eps" and temporal_weight:
        # x̂_0 from ε divides by √ᾱ: the x̂_0-space multi-date loss would weigh the last steps
        # by up to (1 - ᾱ)/ᾱ ~ 1e4 and swamp Eq. 27, so an ε-model fits on Eq. 27 alone.
        log.warning("fit: %s predicts ε; fitting on Eq. 27 only (no multi-date step)", checkpoint)
        temporal_weight = 0.0
    try:
        opened = cube if isinstance(cube, xr.Dataset) else xr.open_zarr(cube, consolidated=False)
    except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError) as exc:
        raise BadInputError(
            f"fit: {cube} is not a readable Zarr cube ({type(exc).__name__}); build one with "
            "`clearcube cube`"
        ) from None
    data = _with_masks(opened, cfg)
    width = data.sizes["x"]
    strip = round(held_out * width)
    eval_patch = min(128, strip, data.sizes["y"]) // multiple * multiple
    if eval_patch < 32 or width - strip < patch_size:
        raise BadInputError(
            f"fit: the cube is {data.sizes['y']}x{width} px; the held-out strip ({strip} px) "
            f"needs >= 32 px and the training part >= patch_size {patch_size}; use a larger "
            "region, a larger held_out or a smaller patch_size"
        )
    split = (width - strip) / width
    common: dict[str, Any] = {"seq_len": seq_len, "clear_threshold": clear_threshold,
                              "s2_bands": cfg.s2_bands}  # fmt: skip
    train_set = CubeDataset(
        data, patch_size=patch_size, synthetic_prob=0.5, samples_per_date=max(64, steps),
        x_range=(0.0, split), seed=seed, **common,
    )  # fmt: skip
    per_date = max(1, -(-eval_samples // len(train_set.clear_dates)))
    eval_set = CubeDataset(
        data, patch_size=eval_patch, samples_per_date=per_date, x_range=(split, 1.0),
        seed=seed + 7919, **common,
    )  # fmt: skip
    samples = [eval_set[i] for i in range(min(eval_samples, len(eval_set)))]

    def report(phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(phase, done, total)

    before, pixels = held_out_rmse(base_net.to(dev), cfg, samples, eval_steps, seed, dev,
                                   lambda i, n: report("before", i, n))  # fmt: skip
    log.info("held-out RMSE before fitting: %.4f over %d pixels", before, pixels)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fit-", dir=Path(out).parent) as run_dir:
        run = TrainConfig(
            model=cfg, steps=steps, batch_size=batch_size, lr=lr, ema_rate=0.99,
            temporal_weight=temporal_weight, temporal_target="consistent",
            checkpoint_every=max(steps, 1), validate_every=0,
            log_every=max(1, steps // 10), out_dir=run_dir, init=str(checkpoint), seed=seed,
            device=str(dev),
        )  # fmt: skip
        last = train(run, datasets=(train_set, None),
                     progress=lambda s, n, _logs: report("train", s, n))  # fmt: skip
        fitted, _, fitted_meta = load_checkpoint(last, device=dev)
        after, _ = held_out_rmse(fitted, cfg, samples, eval_steps, seed, dev,
                                 lambda i, n: report("after", i, n))  # fmt: skip
        log.info("held-out RMSE after fitting: %.4f", after)
        extra = dict(read_checkpoint(last).get("extra") or {})
        extra.pop("rng", None)
        extra["fit"] = {
            "base_checkpoint": str(checkpoint), "base_sha256": meta["sha256"],
            "rmse_before": before, "rmse_after": after, "held_out": held_out,
            "held_out_samples": len(samples), "held_out_pixels": pixels, "steps": steps,
        }  # fmt: skip
        path = save_checkpoint(out, fitted, cfg, step=int(fitted_meta["step"]), extra=extra)
    return FitResult(
        path=path, rmse_before=before, rmse_after=after, held_out_samples=len(samples),
        held_out_pixels=pixels, steps=steps, seconds=time.perf_counter() - start,
    )  # fmt: skip


@torch.no_grad()
def held_out_rmse(
    net: torch.nn.Module,
    cfg: ModelConfig,
    samples: Sequence[Mapping[str, torch.Tensor]],
    steps: int,
    seed: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[float, int]:
    """RMSE (reflectance) of SeqTIS fills over the pixels cloudy in every input of each sample.

    Only pixels clear in the sample's target count (``target_known``, when the sample has it):
    a target date may be up to ``clear_threshold`` cloudy, and its cloudy pixels are no truth.

    Returns:
        ``(rmse, pixels)``; NaN and 0 when no sample has such a pixel.
    """
    total, count = 0.0, 0
    net.eval()
    for i, sample in enumerate(samples):
        known = sample["known"]  # (L, H, W)
        gap = ~known.any(dim=0)
        if "target_known" in sample:
            gap &= sample["target_known"]
        if progress is not None:
            progress(i, len(samples))
        if not bool(gap.any()):
            continue
        out = fill_gaps(
            net, cfg,
            observed=sample["inputs_s2"][None].to(device),
            known=known[None, :, None].to(device),
            sar=sample["inputs_s1"][None].to(device),
            generator=torch.Generator(device=device).manual_seed(seed + i),
            sampler="ddim", steps=steps,
        )[0].cpu()  # fmt: skip
        diff = (out - sample["target_s2"])[:, gap] / 2.0  # [-1, 1] → reflectance
        total += float(diff.double().square().sum())
        count += int(diff.numel())
    if progress is not None:
        progress(len(samples), len(samples))
    bands = len(cfg.s2_bands)
    return (float(np.sqrt(total / count)) if count else float("nan")), count // bands


def _with_masks(cube: xr.Dataset, cfg: ModelConfig) -> xr.Dataset:
    """The cube (in memory) with a ``cloud`` mask for every date.

    The pipeline masks only the dates it fuses (attribute :data:`CUBE_MASK_ATTR` lists them); the
    others are masked here with s2cloudless, which needs the 13 L1C bands.
    """
    for var in ("s2", "s1"):
        if var not in cube:
            raise BadInputError(
                f"fit: the cube has no {var!r} variable; build it with `clearcube cube`"
            )
    missing = sorted(set(cfg.s2_bands) - {str(b) for b in cube["band"].values})
    if missing:
        raise BadInputError(
            f"fit: the cube lacks bands {missing} of the checkpoint; fit a checkpoint trained "
            "on the cube's bands"
        )
    cube = cube.load()
    masked: set[int] = set()
    for dates in dict(cube.attrs.get(CUBE_MASK_ATTR) or {}).values():
        masked.update(int(d) for d in dates)
    n = cube.sizes["time"]
    if "cloud" in cube and not cube.attrs.get(CUBE_MASK_ATTR):
        return cube  # a cube whose cloud variable covers every date (e.g. simulated truth)
    cloud = (
        np.asarray(cube["cloud"].values, dtype=bool)
        if "cloud" in cube
        else np.zeros((n, cube.sizes["y"], cube.sizes["x"]), dtype=bool)
    )
    todo = [t for t in range(n) if t not in masked]
    if todo:
        log.info("fit: masking %d dates without a stored mask (s2cloudless)", len(todo))
        bands = tuple(str(b) for b in cube["band"].values)
        cloud[todo] = s2cloudless_cloud(np.asarray(cube["s2"].values[todo]), bands)
    return cube.assign(cloud=(("time", "y", "x"), cloud))


__all__ = ["FitResult", "fit", "held_out_rmse"]

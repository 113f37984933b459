"""Training loop of SeqDMs: the temporal training strategy (Algorithm 2) with AdamW, EMA and AMP.

Each step draws a batch of (clear target, L cloudy inputs) samples and minimises the sum of the
clean-pair hybrid loss (Eq. 27) and the cloudy-sequence loss (Eq. 28, weighted by
``temporal_weight``). The diffusion maths live in :mod:`clearcube.model.diffusion` and
:mod:`clearcube.model.seqtis`; this module only orchestrates data, optimisation, EMA weights,
mixed precision, checkpoints (resumable, including the RNG state) and validation.

    train(cfg) -> Path of the last checkpoint
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from clearcube import BadInputError, ClearcubeError
from clearcube.model import metrics
from clearcube.model.baselines import clear_mean_fill
from clearcube.model.checkpoint import read_checkpoint, save_checkpoint
from clearcube.model.config import ModelConfig
from clearcube.model.data.cube_dataset import CubeDataset
from clearcube.model.data.simulated import simulated_cubes
from clearcube.model.fill import SamplerName, fill_gaps
from clearcube.model.train_config import TrainConfig
from clearcube.model.train_losses import make_loss_fn, make_reconstruction_fn
from clearcube.model.unet import UNet, count_parameters

#: What the training loop draws batches from: samples as dicts of tensors.
Samples = Dataset[dict[str, torch.Tensor]]
log = logging.getLogger(__name__)

Batch = Mapping[str, Tensor]
#: ``loss_fn(net, batch, generator) -> {"loss": (B,), ...}``: per-sample losses of one batch.
LossFn = Callable[[nn.Module, Batch, torch.Generator], Mapping[str, Tensor]]
#: ``progress(step, total_steps, logs)`` is called after every step.
Progress = Callable[[int, int, Mapping[str, float]], None]


def train(
    cfg: TrainConfig,
    *,
    progress: Progress | None = None,
    loss_fn: LossFn | None = None,
    datasets: tuple[Samples, Samples | None] | None = None,
    validate_more: Callable[[nn.Module, Samples], Mapping[str, float]] | None = None,
) -> Path:
    """Train (or resume training) a SeqDMs network and return the path of its last checkpoint.

    Args:
        cfg: the run.
        progress: called as ``progress(step, cfg.steps, logs)`` after every step.
        loss_fn: per-sample loss of a batch (also used for validation); default: Eq. 27 +
            ``temporal_weight`` x Eq. 28, validated by the Eq. 28 loss and x̂_0 at a fixed t.
        datasets: (train, validation or None) to use instead of ``cfg.data``.
        validate_more: ``validate_more(ema_net, val_set) -> figures`` added to each validation
            (the default loss adds real SeqTIS fills, :func:`validate_fills`).
    """
    device = torch_device(cfg.device)
    model_cfg = cfg.model_config()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set = datasets if datasets is not None else build_datasets(cfg, model_cfg)
    loss_fn_default = loss_fn is None
    if loss_fn is not None:
        val_fn = loss_fn
    else:
        loss_fn = make_loss_fn(
            model_cfg,
            temporal_weight=cfg.temporal_weight,
            temporal_target=cfg.temporal_target,
        )
        val_fn = make_reconstruction_fn(model_cfg)

    torch.manual_seed(cfg.seed)
    net = UNet(model_cfg.unet).to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    start = _maybe_resume(cfg, model_cfg, net, ema, opt, generator, out_dir)
    if start == 0 and cfg.init:
        _init_weights(cfg.init, model_cfg, net, ema)
    log.info("training %d parameters on %s from step %d", count_parameters(net), device, start)

    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    use_amp = device.type == "cuda" and amp_dtype is not None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    loader = DataLoader(
        train_set,
        batch_sampler=StepBatchSampler(len(train_set), cfg.batch_size, cfg.seed, start, cfg.steps),  # type: ignore[arg-type]
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
    )
    last = out_dir / "last.pt"
    timer, window = time.perf_counter(), 0.0
    step = start
    for batch in loader:
        net.train()
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=use_amp):
            losses = loss_fn(net, batch, generator)
        loss = losses["loss"].float().mean()
        if not torch.isfinite(loss):
            raise ClearcubeError(f"loss became {loss.item()} at step {step}; lower lr or use fp32")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        scaler.unscale_(opt)
        grad_norm = _clip(net, cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        step += 1
        _ema_update(ema, net, min(cfg.ema_rate, (1 + step) / (10 + step)))

        logs = {"loss": loss.item(), "grad_norm": grad_norm}
        logs.update({k: v.float().mean().item() for k, v in losses.items() if k != "loss"})
        window += loss.item()
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = (step - start) % cfg.log_every or cfg.log_every
            rate = n / max(time.perf_counter() - timer, 1e-9)
            log.info(
                "step %d/%d loss %.4f (%.2f steps/s, %.1f samples/s)",
                step,
                cfg.steps,
                window / n,
                rate,
                rate * cfg.batch_size,
            )
            logs["steps_per_s"] = rate
            logs["samples_per_s"] = rate * cfg.batch_size
            timer, window = time.perf_counter(), 0.0
        if (
            val_set is not None
            and cfg.validate_every
            and (step % cfg.validate_every == 0 or step == cfg.steps)
        ):
            logs.update(validate(ema, val_set, val_fn, cfg, device))
            if loss_fn_default:
                logs.update(validate_fills(ema, model_cfg, val_set, cfg, device))
            if validate_more is not None:
                logs.update(validate_more(ema, val_set))
            log.info("step %d validation %s", step, {k: round(v, 4) for k, v in logs.items()})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save(last, cfg, model_cfg, net, ema, opt, generator, step, logs)
        if progress is not None:
            progress(step, cfg.steps, logs)
    if step == start and not last.is_file():  # nothing to do: still hand back a checkpoint
        _save(last, cfg, model_cfg, net, ema, opt, generator, step, {})
    return last


def build_datasets(cfg: TrainConfig, model_cfg: ModelConfig) -> tuple[Samples, Samples | None]:
    """Training and validation datasets of ``cfg.data`` (validation may be None)."""
    d = cfg.data
    if d.kind == "simulated":
        return _simulated_datasets(cfg, model_cfg)
    if not d.path:
        raise BadInputError("train: data.path is empty; give a Zarr cube or a SEN12MS-CR-TS root")
    if d.kind == "sen12mscrts":
        # rasterio (the GeoTIFF reader) is not needed for simulated or Zarr data: a bare GPU
        # machine with torch, xarray and scipy trains the demo model (scripts/train-demo.py)
        from clearcube.model.data.sen12mscrts import Sen12mscrtsDataset

        train_set: Samples = Sen12mscrtsDataset(d.path, split="train", seq_len=d.seq_len)
        try:
            val: Samples | None = Sen12mscrtsDataset(d.path, split="test", seq_len=d.seq_len)
        except BadInputError:
            val = None
        return train_set, val
    if d.kind == "zarr":
        common: dict[str, Any] = {
            "seq_len": d.seq_len,
            "patch_size": d.patch_size,
            "clear_threshold": d.clear_threshold,
            "s2_bands": model_cfg.s2_bands,
            "seed": cfg.seed,
        }
        split = 1.0 - d.val_fraction
        train_set = CubeDataset(
            d.path,
            synthetic_prob=d.synthetic_prob,
            samples_per_date=d.samples_per_date,
            sar_dropout=d.sar_dropout,
            x_range=(0.0, split),
            **common,
        )
        val = None
        if d.val_fraction > 0:
            # validation always uses real cloudy inputs: that is the task being measured
            val = CubeDataset(d.path, samples_per_date=4, x_range=(split, 1.0), **common)
        return train_set, val
    raise BadInputError(
        f"train: data.kind {d.kind!r} unknown; use 'zarr', 'sen12mscrts' or 'simulated'"
    )


def _simulated_datasets(cfg: TrainConfig, model_cfg: ModelConfig) -> tuple[Samples, Samples]:
    """Cube samples from demo-generator landscapes: training seeds and held-out validation seeds."""
    d = cfg.data
    common: dict[str, Any] = {
        "seq_len": d.seq_len,
        "patch_size": d.patch_size,
        "clear_threshold": d.clear_threshold,
        "s2_bands": model_cfg.s2_bands,
    }
    train_sets = [
        CubeDataset(
            cube,
            synthetic_prob=d.synthetic_prob,
            samples_per_date=d.samples_per_date,
            sar_dropout=d.sar_dropout,
            seed=cfg.seed + i,
            **common,
        )
        for i, cube in enumerate(simulated_cubes(d.seeds, size=d.size, level=d.level))
    ]
    # validation uses real cloudy inputs only: that is the task being measured
    val_sets = [
        CubeDataset(cube, samples_per_date=4, seed=cfg.seed + 1000 + i, **common)
        for i, cube in enumerate(simulated_cubes(d.val_seeds, size=d.size, level=d.level))
    ]
    return ConcatDataset(train_sets), ConcatDataset(val_sets)


@torch.no_grad()
def validate(
    net: nn.Module, val_set: Samples, loss_fn: LossFn, cfg: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Mean validation loss with fixed noise, plus RMSE/PSNR (on [0, 1]) of the x̂_0 estimate.

    The x̂_0 figures come from ``loss_fn``'s optional ``"pred_x0"`` output (B, C, H, W) on the
    model scale; they are a cheap proxy of reconstruction quality, not a full sampler run.
    """
    net.eval()
    generator = torch.Generator(device=device).manual_seed(12345)
    loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False)
    losses, errors = [], []
    for i, batch in enumerate(loader):
        if i >= cfg.val_batches:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        out = loss_fn(net, batch, generator)
        losses.append(out["loss"].float().mean().item())
        if "pred_x0" in out:
            pred = (out["pred_x0"].float().clamp(-1, 1) + 1) / 2
            target = (batch["target_s2"].float() + 1) / 2
            errors += [metrics.rmse(p, t) for p, t in zip(pred, target, strict=True)]
    result = {"val_loss": sum(losses) / max(len(losses), 1)}
    if errors:
        result["val_rmse"] = sum(errors) / len(errors)
        result["val_psnr"] = sum(metrics.psnr_from_rmse(e) for e in errors) / len(errors)
    return result


@torch.no_grad()
def validate_fills(
    net: nn.Module,
    model_cfg: ModelConfig,
    val_set: Samples,
    cfg: TrainConfig,
    device: torch.device,
    *,
    steps: int = 10,
    sampler: SamplerName = "ddim",
) -> dict[str, float]:
    """Real SeqTIS fills of one validation batch, scored like the evaluation.

    RMSE over the pixels cloudy in every input (reflectance), SSIM and SAM of the whole image,
    for the model (``sampler``, ``steps`` steps or calls, fixed noise) and for the clear-mean fill of the same
    samples, so the log shows whether the model beats the baseline it must beat.
    """
    net.eval()
    batch = next(iter(DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False)))
    known = batch["known"].to(device)
    out = fill_gaps(
        net, model_cfg,
        observed=batch["inputs_s2"].to(device), known=known[:, :, None],
        sar=batch["inputs_s1"].to(device),
        generator=torch.Generator(device=device).manual_seed(4321), sampler=sampler, steps=steps,
    )  # fmt: skip
    rows: dict[str, list[float]] = {k: [] for k in ("fill", "clear_mean")}
    ssim: dict[str, list[float]] = {k: [] for k in rows}
    sam: dict[str, list[float]] = {k: [] for k in rows}
    for i in range(out.shape[0]):
        target = (batch["target_s2"][i].double().numpy() + 1) / 2
        inputs = (batch["inputs_s2"][i].double().numpy() + 1) / 2
        cloud = ~batch["known"][i].numpy()
        preds = {
            "fill": (out[i].double().cpu().clamp(-1, 1).numpy() + 1) / 2,
            "clear_mean": clear_mean_fill(inputs, cloud),
        }
        gap = metrics.cloudy_pixels(cloud)
        for key, pred in preds.items():
            if gap.any():
                rows[key].append(metrics.rmse(pred, target, where=gap))
            ssim[key].append(metrics.ssim(pred, target))
            sam[key].append(metrics.sam(pred, target))
    result = {}
    for key in rows:
        if rows[key]:
            result[f"val_{key}_rmse"] = float(np.mean(rows[key]))
        result[f"val_{key}_ssim"] = float(np.mean(ssim[key]))
        result[f"val_{key}_sam"] = float(np.nanmean(sam[key]))
    return result


class StepBatchSampler(Sampler[list[int]]):
    """Batches of indices for steps ``start+1 .. steps``.

    Epoch e is a permutation seeded by ``seed + e``, so a resumed run sees exactly the batches
    an uninterrupted one would.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, steps: int):
        if n < 1:
            raise BadInputError("train: the training dataset is empty")
        self.n, self.batch_size, self.seed, self.start, self.steps = (
            n,
            batch_size,
            seed,
            start,
            steps,
        )

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        pos = self.start * self.batch_size
        epoch, offset = divmod(pos, self.n)
        perm = self._perm(epoch)
        for _ in range(len(self)):
            batch: list[int] = []
            while len(batch) < self.batch_size:
                if offset == self.n:
                    epoch, offset = epoch + 1, 0
                    perm = self._perm(epoch)
                batch.append(perm[offset])
                offset += 1
            yield batch

    def _perm(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=g).tolist()


def torch_device(name: str, *, command: str = "train") -> torch.device:
    """``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``... as a torch device.

    Raises:
        BadInputError: a name torch does not understand, or CUDA asked for where there is none
            (the message starts with ``command``).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInputError(
            f"{command}: device {name!r} is not understood; use cpu, cuda or auto"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(
            f"{command}: device {name} requested but CUDA is not available; use cpu"
        )
    return device


def _clip(net: nn.Module, max_norm: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm if max_norm > 0 else math.inf)
    return float(norm)


@torch.no_grad()
def _ema_update(ema: nn.Module, net: nn.Module, rate: float) -> None:
    ema_p: list[Tensor] = list(ema.parameters())
    torch._foreach_lerp_(ema_p, [p.detach() for p in net.parameters()], 1.0 - rate)


def _save(
    path: Path,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    net: nn.Module,
    ema: nn.Module,
    opt: torch.optim.Optimizer,
    generator: torch.Generator,
    step: int,
    logs: Mapping[str, float],
) -> None:
    rng = {"torch": torch.get_rng_state(), "noise": generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    extra = {"train_config": cfg.to_dict(), "rng": rng, "logs": dict(logs)}
    save_checkpoint(path, net, model_cfg, step=step, ema=ema, optimizer=opt, extra=extra)


def _init_weights(source: str, model_cfg: ModelConfig, net: nn.Module, ema: nn.Module) -> None:
    """Start from another checkpoint's weights (its EMA when it has one).

    A network whose Sentinel-2 bands are a subset of the checkpoint's (an L2A model from an
    L1C one: no B10) starts from the checkpoint with those bands' input and output channels
    kept and the others dropped; every other weight must match in shape.
    """
    payload = read_checkpoint(source)
    stored = ModelConfig.from_dict(payload["config"])
    same_but_bands = dataclasses.replace(stored.unet, in_channels=model_cfg.unet.in_channels)
    subset = set(model_cfg.s2_bands) <= set(stored.s2_bands)
    if stored.unet != model_cfg.unet and not (same_but_bands == model_cfg.unet and subset):
        raise BadInputError(
            f"train: init checkpoint {source} has another network shape than this run's; "
            "use its preset (or model.unet) or drop init"
        )
    state = payload["ema"] if payload.get("ema") is not None else payload["state_dict"]
    if stored.s2_bands != model_cfg.s2_bands:
        state = _select_bands(state, stored, model_cfg)
    net.load_state_dict(state)
    ema.load_state_dict(state)
    log.info("initialised from %s (step %d)", source, int(payload["step"]))


def _select_bands(
    state: dict[str, Tensor], stored: ModelConfig, target: ModelConfig
) -> dict[str, Tensor]:
    """``state`` with the first convolution's and the output's channels cut to ``target``'s bands."""
    keep = [stored.s2_bands.index(b) for b in target.s2_bands]
    c = len(stored.s2_bands)
    cond = list(range(c, c + stored.unet.cond_channels))
    out = keep + ([c + k for k in keep] if stored.unet.learn_sigma else [])
    first_in = next(k for k, v in state.items() if v.ndim == 4 and v.shape[1] == c + len(cond))
    weights = [
        k for k, v in state.items() if v.ndim == 4 and v.shape[0] == stored.unet.out_channels
    ]
    last_out = weights[-1]
    bias = last_out.removesuffix("weight") + "bias"
    picked = dict(state)
    picked[first_in] = state[first_in][:, keep + cond]
    picked[last_out] = state[last_out][out]
    if bias in state:
        picked[bias] = state[bias][out]
    return picked


def _maybe_resume(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    net: nn.Module,
    ema: nn.Module,
    opt: torch.optim.Optimizer,
    generator: torch.Generator,
    out_dir: Path,
) -> int:
    source = cfg.resume
    if source == "auto":
        source = str(out_dir / "last.pt") if (out_dir / "last.pt").is_file() else None
    if source is None:
        return 0
    payload = read_checkpoint(source)
    stored = ModelConfig.from_dict(payload["config"])
    if stored != model_cfg:
        raise BadInputError(
            f"cannot resume from {source}: it holds another model config than this run's; "
            "use the same preset/model or start a new out_dir"
        )
    net.load_state_dict(payload["state_dict"])
    ema.load_state_dict(payload["ema"] if payload["ema"] is not None else payload["state_dict"])
    if payload["optimizer"] is not None:
        opt.load_state_dict(payload["optimizer"])
    rng = payload["extra"].get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "noise" in rng:
        try:
            generator.set_state(rng["noise"])
        except RuntimeError:  # saved on another device type: keep the fresh seeded generator
            log.warning("noise generator state of %s does not fit this device; reseeded", source)
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return int(payload["step"])

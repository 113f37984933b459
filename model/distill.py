"""Consistency distillation runs: a SeqDMs teacher into a few-call CM-CR student.

    distill(teacher, cfg, settings, out) -> Path of the student checkpoint

The maths is :mod:`clearcube.model.consistency`; the optimisation loop, checkpoints
(``out_dir/last.pt``, resumable with the RNG state), EMA and validation are the training loop's
(:func:`clearcube.model.train.train`) with the distillation loss plugged in. The student starts
from the teacher's weights (EMA), the data are the training run's (``data:`` of the YAML); the
release file ``out`` holds the EMA weights only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from clearcube import BadInputError
from clearcube.model import consistency, scaling
from clearcube.model.checkpoint import (
    checkpoint_sha256,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from clearcube.model.config import ConsistencyConfig, ModelConfig, dataclass_from_dict
from clearcube.model.schedule import from_config
from clearcube.model.train import (
    Progress,
    Samples,
    build_datasets,
    torch_device,
    train,
    validate_fills,
)
from clearcube.model.train_config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillSettings:
    """The ``distill:`` section of a distillation YAML."""

    grid_points: int = 18
    """N of the Karras grid before snapping to the teacher's steps (the reference: 18-40)."""
    sigma_max: float = consistency.SIGMA_MAX
    """Top of the grid, where sampling starts."""
    rho: float = consistency.RHO
    """ρ of the Karras grid."""
    sigma_data: float | str = "auto"
    """σ_d of the boundary coefficients; "auto" measures the RMS of ``sigma_data_samples``
    training targets in diffusion space."""
    sigma_data_samples: int = 256
    """Training samples σ_d is measured on (evenly spaced over the dataset: deterministic)."""
    distance: consistency.Distance = "l2"
    """d of the loss: ``l2`` (mean squared error) or ``pseudo_huber``."""
    ladder_low: float = 0.5
    """Lowest σ of the default PDMSR ladder (``ConsistencyConfig.ladder_low``)."""
    validate_calls: tuple[int, ...] = (1, 4)
    """PDMSR network calls of the validation fills."""

    def __post_init__(self) -> None:
        if self.distance not in ("l2", "pseudo_huber"):
            raise BadInputError(
                f"distill.distance {self.distance!r} unknown; use l2 or pseudo_huber"
            )
        if isinstance(self.sigma_data, str) and self.sigma_data != "auto":
            raise BadInputError(
                f"distill.sigma_data must be a number or 'auto', got {self.sigma_data!r}"
            )


def split_config(raw: Mapping[str, Any]) -> tuple[TrainConfig, DistillSettings]:
    """A parsed distillation YAML: the training keys and the ``distill:`` section."""
    data = dict(raw)
    for key in ("model", "preset", "init"):
        if key in data:
            raise BadInputError(
                f"distill config: {key!r} is not allowed; the teacher checkpoint decides the "
                "network (remove the key)"
            )
    settings = dataclass_from_dict(DistillSettings, data.pop("distill", None) or {}, "distill")
    return TrainConfig.from_dict(data), settings


def distill(
    teacher: str | Path,
    cfg: TrainConfig,
    settings: DistillSettings,
    out: str | Path,
    *,
    progress: Progress | None = None,
    datasets: tuple[Samples, Samples | None] | None = None,
) -> Path:
    """Distil ``teacher`` into a consistency student written to ``out``; returns ``out``.

    Args:
        teacher: a diffusion checkpoint with clean-SAR conditioning (the bundled demo.pt).
        cfg: the run: data, steps, batch size, optimiser, ``out_dir`` (checkpoints, resume).
        settings: the grid, σ_d, distance.
        out: the student release file (EMA weights; written atomically).
        progress: ``progress(step, total, logs)`` after every step.
        datasets: (train, validation) instead of ``cfg.data``.
    """
    device = torch_device(cfg.device, command="distill")
    loaded, teacher_cfg, meta = load_checkpoint(teacher, device=device)
    net_t = consistency.frozen(loaded)
    sets = datasets if datasets is not None else build_datasets(cfg, teacher_cfg)
    sigma_data = (
        _measure_sigma_data(sets[0], teacher_cfg, settings.sigma_data_samples)
        if settings.sigma_data == "auto"
        else float(settings.sigma_data)
    )
    sigmas = consistency.teacher_sigmas(from_config(teacher_cfg.diffusion))
    cc = ConsistencyConfig(
        sigma_data=round(sigma_data, 6),
        sigma_min=float(sigmas[0]),
        grid=consistency.karras_grid(
            sigmas, settings.grid_points, sigma_max=settings.sigma_max, rho=settings.rho
        ),
        rho=settings.rho,
        ladder_low=settings.ladder_low,
        teacher_sha256=meta["sha256"],
    )
    student_cfg = consistency.student_from_teacher(teacher_cfg, cc)
    log.info(
        "distilling %s: sigma_data %.4f, grid of %d teacher steps %s",
        teacher, cc.sigma_data, len(cc.grid), cc.grid,
    )  # fmt: skip
    init = _student_init(teacher, student_cfg, Path(cfg.out_dir) / "init.pt")
    run = dataclasses.replace(cfg, model=student_cfg, init=str(init))
    loss_fn = _loss_fn(net_t, teacher_cfg, student_cfg, settings, device)

    def validate_more(ema: nn.Module, val_set: Samples) -> dict[str, float]:
        figures: dict[str, float] = {}
        for calls in settings.validate_calls:
            got = validate_fills(
                ema, student_cfg, val_set, run, device, steps=calls, sampler="pdmsr"
            )
            figures[f"val_cm{calls}_rmse"] = got["val_fill_rmse"]
            figures["val_clear_mean_rmse"] = got["val_clear_mean_rmse"]
        return figures

    start = time.perf_counter()
    last = train(
        run, progress=progress, loss_fn=loss_fn, datasets=sets, validate_more=validate_more
    )
    net, stored_cfg, last_meta = load_checkpoint(last, use_ema=True)
    extra = dict(read_checkpoint(last).get("extra") or {})
    extra["distill"] = {
        **dataclasses.asdict(settings),
        "teacher": str(teacher),
        "teacher_sha256": checkpoint_sha256(teacher),
        "seconds_this_run": round(time.perf_counter() - start, 1),
    }
    extra.pop("rng", None)
    save_checkpoint(out, net, stored_cfg, step=last_meta["step"], extra=extra)
    log.info("wrote the student %s (step %d)", out, last_meta["step"])
    return Path(out)


def _student_init(teacher: str | Path, student_cfg: ModelConfig, path: Path) -> Path:
    """The teacher's weights with the output layer's first C channels scaled by −1/σ_d.

    The teacher predicts v, and its x̂_0 at high σ is ≈ −v; the student's f there is
    ≈ σ_d·F. Starting from F = −v/σ_d makes the student's one-call estimate at σ_max the
    teacher's x̂_0 from the first step (the boundary form then differs from the teacher's only
    at low σ, where f ≈ y anyway). Written to ``path`` so the run is inspectable and resumable.
    """
    net, teacher_cfg, meta = load_checkpoint(teacher, use_ema=True)
    assert student_cfg.consistency is not None
    if teacher_cfg.diffusion.prediction != "v":
        raise BadInputError(
            f"distill: the teacher predicts {teacher_cfg.diffusion.prediction!r}; distillation "
            "supports v-predicting teachers (prediction: v), like the bundled demo.pt"
        )
    state = net.state_dict()
    last = [
        k for k, v in state.items() if v.ndim == 4 and v.shape[0] == teacher_cfg.unet.out_channels
    ][-1]
    c = len(teacher_cfg.s2_bands)
    factor = -1.0 / student_cfg.consistency.sigma_data
    bias = last.removesuffix("weight") + "bias"
    with torch.no_grad():
        state[last][:c] *= factor
        if bias in state:
            state[bias][:c] *= factor
    net.load_state_dict(state)
    return save_checkpoint(
        path, net, student_cfg, step=int(meta["step"]), extra={"from": str(teacher)}
    )


def _loss_fn(
    net_t: nn.Module,
    teacher_cfg: ModelConfig,
    student_cfg: ModelConfig,
    settings: DistillSettings,
    device: torch.device,
) -> Any:
    like = torch.zeros((len(teacher_cfg.s2_bands), 1, 1), device=device)
    bounds = (
        None if teacher_cfg.scaling.is_identity else scaling.clip_bounds(teacher_cfg.scaling, like)
    )
    denoise = consistency.teacher_denoiser(net_t, teacher_cfg, bounds)

    def loss_fn(
        net: nn.Module, batch: Mapping[str, Tensor], g: torch.Generator
    ) -> dict[str, Tensor]:
        target = scaling.to_diffusion(batch["target_s2"], student_cfg.scaling)
        cond = batch["inputs_s1"].mean(dim=1)  # the dates' mean clean SAR, as at inference
        region = batch["known"].any(dim=1, keepdim=True)
        student = consistency.ConsistencyFunction(net, student_cfg)
        return consistency.distillation_losses(
            student, denoise, target=target, cond=cond, region=region, generator=g,
            kind=settings.distance,
        )  # fmt: skip

    return loss_fn


def _measure_sigma_data(train_set: Samples, cfg: ModelConfig, count: int) -> float:
    """RMS of ``count`` training targets (evenly spaced in the dataset) in diffusion space."""
    if count < 1:
        raise BadInputError("distill.sigma_data_samples must be >= 1")
    total = len(train_set)  # type: ignore[arg-type]
    picked = range(0, total, max(total // count, 1))[:count]  # spread over every landscape
    loader = DataLoader(torch.utils.data.Subset(train_set, list(picked)), batch_size=32)
    targets = [scaling.to_diffusion(b["target_s2"], cfg.scaling) for b in loader]
    return consistency.measure_sigma_data(targets)

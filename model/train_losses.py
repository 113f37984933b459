"""Per-batch losses of the temporal training strategy (Algorithm 2 of the SeqDMs paper).

A thin adapter from the dataset's sample dicts (:mod:`clearcube.model.data`) to
:func:`clearcube.model.seqtis.temporal_training_losses`: one timestep t per sample, uniform over
the training chain (Algorithm 2 line 5), then the clean-pair loss (Eq. 27) plus
``temporal_weight`` times the cloudy-sequence loss (Eq. 28), each the hybrid L_simple + λ·L_vlb.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from clearcube.model import diffusion, scaling, seqtis
from clearcube.model import schedule as schedule_mod
from clearcube.model.config import ModelConfig

LossFn = Callable[[nn.Module, Mapping[str, Tensor], torch.Generator], dict[str, Tensor]]


def make_loss_fn(
    model_cfg: ModelConfig,
    *,
    temporal_weight: float = 1.0,
    temporal_target: Literal["paper", "consistent"] = "paper",
) -> LossFn:
    """Loss of one batch.

    Per-sample ``"loss"`` (B,) = Eq. 27 + ``temporal_weight`` x Eq. 28, with the parts
    (``loss_clean``, ``loss_cloudy``, ``mse_*``, ``vb_*``) beside it.
    """
    sched = schedule_mod.from_config(model_cfg.diffusion)
    d = model_cfg.diffusion

    def loss_fn(
        net: nn.Module, batch: Mapping[str, Tensor], g: torch.Generator
    ) -> dict[str, Tensor]:
        batch = _scaled(batch, model_cfg)
        target = batch["target_s2"]
        t = torch.randint(0, sched.num_steps, (target.shape[0],), generator=g, device=target.device)
        out: dict[str, Tensor] = seqtis.temporal_training_losses(
            net,
            sched,
            target=target,
            target_sar=batch["target_s1"],
            inputs=_inputs(batch),
            t=t,
            source=g,
            lambda_vlb=d.lambda_vlb,
            prediction=d.prediction,
            with_cloudy=temporal_weight != 0,
            sar_noise=d.sar_noise,
            weight=batch.get("weight"),
            temporal_target=temporal_target,
        )
        if temporal_weight != 0:
            out["loss"] = out["loss_clean"] + temporal_weight * out["loss_cloudy"]
        return out

    return loss_fn


def make_reconstruction_fn(model_cfg: ModelConfig, *, t_fraction: float = 0.25) -> LossFn:
    """Validation loss: a cheap proxy of reconstruction quality.

    The Eq. 28 loss at one fixed t (``t_fraction`` of the chain) with its one-step x̂_0 estimate
    as ``"pred_x0"`` (B, C, H, W).
    """
    sched = schedule_mod.from_config(model_cfg.diffusion)
    d = model_cfg.diffusion

    def recon_fn(
        net: nn.Module, batch: Mapping[str, Tensor], g: torch.Generator
    ) -> dict[str, Tensor]:
        batch = _scaled(batch, model_cfg)
        target = batch["target_s2"]
        t = torch.full(
            (target.shape[0],), int(t_fraction * (sched.num_steps - 1)), device=target.device
        )
        x_t, a_t = seqtis.temporal_training_inputs(
            sched, _inputs(batch), t, g, sar_noise=d.sar_noise
        )
        eps = torch.randn(target.shape, generator=g, device=target.device, dtype=target.dtype)
        out: dict[str, Tensor] = diffusion.training_losses(
            net,
            sched,
            target,
            t,
            a_t,
            eps,
            x_t=x_t,
            lambda_vlb=d.lambda_vlb,
            prediction=d.prediction,
        )
        # validate() scores x̂_0 against the paper-scale target of the batch
        out["pred_x0"] = scaling.from_diffusion(out["pred_x0"], model_cfg.scaling)
        return out

    return recon_fn


def _scaled(batch: Mapping[str, Tensor], model_cfg: ModelConfig) -> dict[str, Tensor]:
    """The batch with its optical tensors mapped into the model's diffusion space."""
    out = dict(batch)
    for key in ("target_s2", "inputs_s2"):
        out[key] = scaling.to_diffusion(batch[key], model_cfg.scaling)
    return out


def _inputs(batch: Mapping[str, Tensor]) -> seqtis.SeqTISInputs:
    return seqtis.SeqTISInputs(
        observed=batch["inputs_s2"], known=batch["known"].unsqueeze(2), sar=batch["inputs_s1"]
    )

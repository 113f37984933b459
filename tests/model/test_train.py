"""The training loop: the loss falls when overfitting, resume is exact, the CLI trains from YAML."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr

from clearcube.bands import S1_BANDS, S2_BANDS
from clearcube.model.checkpoint import load_checkpoint, read_checkpoint
from clearcube.model.config import ModelConfig, UNetConfig
from clearcube.model.data.cube_dataset import CubeDataset
from clearcube.model.train import StepBatchSampler, train
from clearcube.model.train_config import DataConfig, TrainConfig
from clearcube.model.train_losses import make_loss_fn
from clearcube.pipeline.cli import main

TINY = ModelConfig(
    unet=UNetConfig(
        model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), norm_groups=4
    )
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cube(n_t: int = 4, size: int = 48) -> xr.Dataset:
    """Smooth fields (a sine pattern per date) with a cloud on every other date."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    s2 = np.stack(
        [
            np.stack([2000 + 1500 * np.sin(6 * xx + t + b / 4) * np.cos(4 * yy) for b in range(13)])
            for t in range(n_t)
        ]
    ).astype(np.uint16)
    s1 = np.stack(
        [np.stack([-12 + 5 * np.sin(6 * xx + t), -18 + 4 * np.cos(4 * yy)]) for t in range(n_t)]
    )
    cloud = np.zeros((n_t, size, size), dtype=bool)
    cloud[1::2, 8:30, 10:40] = True
    return xr.Dataset(
        {
            "s2": (("time", "band", "y", "x"), s2),
            "s1": (("time", "s1_band", "y", "x"), s1.astype(np.float32)),
            "cloud": (("time", "y", "x"), cloud),
        },
        coords={"band": list(S2_BANDS), "s1_band": list(S1_BANDS)},
    )


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(
        model=TINY,
        steps=6,
        batch_size=2,
        lr=1e-3,
        ema_rate=0.9,
        checkpoint_every=3,
        validate_every=0,
        log_every=2,
        out_dir=str(tmp_path / "run"),
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


def _datasets(n_patches: int = 4):
    ds = CubeDataset(_cube(), seq_len=2, patch_size=16, samples_per_date=n_patches // 2, seed=0)
    return ds, ds


def _fixed_loss(net, dataset) -> float:
    """Mean ε-MSE of the clean-pair branch (Eq. 27) over the dataset, with fixed noise.

    The cloudy branch (Eq. 28, Algorithm 2 line 25 as written) regresses the clean pair's ε_x̂,
    which is independent of its input X_t, so its MSE cannot fall below 1: it is not measured.
    """
    loss_fn = make_loss_fn(TINY)
    batch = {k: torch.stack([dataset[i][k] for i in range(len(dataset))]) for k in dataset[0]}
    losses = []
    for seed in range(4):
        with torch.no_grad():
            out = loss_fn(net.eval(), batch, torch.Generator().manual_seed(seed))
            losses.append(out["mse_clean"].mean().item())
    return float(np.mean(losses))


def test_loss_falls_when_overfitting_a_few_patches(tmp_path):
    train_set, _ = _datasets(4)
    cfg = _cfg(tmp_path, steps=120, checkpoint_every=120, validate_every=120, lr=2e-3, ema_rate=0.0)
    seen = []
    path = train(
        cfg, datasets=(train_set, train_set), progress=lambda s, n, logs: seen.append(logs)
    )
    assert len(seen) == 120 and "steps_per_s" in seen[-1]
    assert seen[-1]["val_loss"] > 0 and 0 < seen[-1]["val_rmse"] < 1
    net0 = UNetFrom(TINY)
    net, _, meta = load_checkpoint(path, use_ema=False)
    assert meta["step"] == 120
    before, after = _fixed_loss(net0, train_set), _fixed_loss(net, train_set)
    # at init the output is exactly zero, so the ε-MSE is E[ε²] = 1
    assert before == pytest.approx(1.0, rel=0.05)
    assert after < 0.85 * before


def UNetFrom(cfg: ModelConfig):
    from clearcube.model.unet import UNet

    return UNet(cfg.unet)


def test_resume_continues_exactly(tmp_path):
    ds, _ = _datasets(4)
    full = train(_cfg(tmp_path / "a"), datasets=(ds, None))
    half = train(_cfg(tmp_path / "b", steps=3), datasets=(ds, None))
    assert read_checkpoint(half)["step"] == 3
    resumed = train(_cfg(tmp_path / "b", resume="auto"), datasets=(ds, None))
    a, b = read_checkpoint(full), read_checkpoint(resumed)
    assert a["step"] == b["step"] == 6
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key])
        torch.testing.assert_close(a["ema"][key], b["ema"][key])
    # already at the requested step: nothing to do, the same checkpoint comes back
    assert train(_cfg(tmp_path / "b", resume="auto"), datasets=(ds, None)) == resumed
    assert read_checkpoint(resumed)["step"] == 6


@pytest.mark.parametrize("start", [0, 1, 5, 7])
def test_batch_stream_resumes_where_it_stopped(start):
    full = list(StepBatchSampler(5, 3, seed=2, start=0, steps=9))
    assert list(StepBatchSampler(5, 3, seed=2, start=start, steps=9)) == full[start:]
    flat = [i for b in full for i in b]
    for epoch in range(len(flat) // 5):  # each epoch is a permutation
        assert sorted(flat[5 * epoch : 5 * epoch + 5]) == list(range(5))


def test_cli_trains_from_yaml(tmp_path):
    _cube().to_zarr(tmp_path / "cube.zarr")
    (tmp_path / "run.yaml").write_text(
        "model:\n"
        "  unet: {model_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, attention_ds: [2], norm_groups: 4}\n"
        "data: {kind: zarr, path: cube.zarr, seq_len: 2, patch_size: 16, samples_per_date: 2, val_fraction: 0.4}\n"
        "batch_size: 2\nvalidate_every: 2\nval_batches: 1\ndevice: cpu\n"
    )
    out = tmp_path / "out"
    assert (
        main(["train", "--config", str(tmp_path / "run.yaml"), "--steps", "2", "--out", str(out)])
        == 0
    )
    _, cfg, meta = load_checkpoint(out / "last.pt", expect_s2_bands=S2_BANDS)
    assert cfg == TINY and meta["step"] == 2 and "val_loss" in meta["extra"]["logs"]
    (tmp_path / "bad.yaml").write_text("stpes: 3\n")
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2


def test_train_config_round_trip_and_errors():
    cfg = TrainConfig(model=TINY, data=DataConfig(path="x"))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model preset"):
        TrainConfig(preset="nope")
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"data": {"pth": "x"}})
    assert dataclasses.replace(cfg, steps=3).steps == 3
    with pytest.raises(ValueError, match="sar_dropout must be in"):
        TrainConfig(model=TINY, data=DataConfig(path="x", sar_dropout=1.5))


def test_validation_fills_score_the_model_beside_the_clear_mean_fill() -> None:
    from clearcube.model.train import validate_fills

    cube = _cube(size=48)
    val = CubeDataset(cube, seq_len=2, patch_size=32, samples_per_date=2, seed=3)
    cfg = TrainConfig(model=TINY, batch_size=2, device="cpu")
    from clearcube.model.unet import UNet

    logs = validate_fills(UNet(TINY.unet), TINY, val, cfg, torch.device("cpu"), steps=2)
    for name in ("fill", "clear_mean"):
        assert {f"val_{name}_ssim", f"val_{name}_sam"} <= set(logs)
        assert all(np.isfinite(v) for v in logs.values())

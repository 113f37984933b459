"""clearcube fit: fine-tuning on a cube with a held-out strip, the API and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from clearcube.bands import S1_BANDS, S2_BANDS
from clearcube.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from clearcube.model.config import DiffusionConfig, ModelConfig, UNetConfig
from clearcube.model.data.cube_dataset import CubeDataset
from clearcube.model.unet import UNet
from clearcube.pipeline.cli import main

TINY = ModelConfig(
    unet=UNetConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(),
                    norm_groups=4),
    diffusion=DiffusionConfig(schedule="cosine", prediction="v", sar_noise="clean"),
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def _cube(n_t: int = 4, size: int = 96) -> xr.Dataset:
    """Smooth fields per date; date 0 is clear, the others share a cloud across the width."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    s2 = np.stack([np.stack([2000 + 1500 * np.sin(6 * xx + t + b / 4) * np.cos(4 * yy)
                             for b in range(13)]) for t in range(n_t)]).astype(np.uint16)  # fmt: skip
    s1 = np.stack([np.stack([-12 + 5 * np.sin(6 * xx), -18 + 4 * np.cos(4 * yy)])] * n_t)
    cloud = np.zeros((n_t, size, size), dtype=bool)
    cloud[1:, 20:70, :] = True
    return xr.Dataset(
        {"s2": (("time", "band", "y", "x"), s2),
         "s1": (("time", "s1_band", "y", "x"), s1.astype(np.float32)),
         "cloud": (("time", "y", "x"), cloud)},
        coords={"band": list(S2_BANDS), "s1_band": list(S1_BANDS)},
    )  # fmt: skip


@pytest.fixture
def base(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "base.pt", UNet(TINY.unet), TINY, step=0)


def test_training_crops_never_touch_the_held_out_strip() -> None:
    cube = _cube()
    width = cube.sizes["x"]
    strip = round(0.25 * width)
    train = CubeDataset(cube, patch_size=32, x_range=(0.0, (width - strip) / width), seed=0)
    # mark the strip's pixels with an impossible DN and check no training sample carries it
    marked = cube.copy(deep=True)
    marked["s2"].values[:, :, :, width - strip :] = 9999
    train_marked = CubeDataset(marked, patch_size=32, x_range=(0.0, (width - strip) / width))
    for i in range(len(train)):
        sample = train_marked[i]
        assert float(sample["target_s2"].max()) < (9999 / 5000 - 1) - 1e-3
        assert float(sample["inputs_s2"].max()) < (9999 / 5000 - 1) - 1e-3


def test_fit_scores_the_held_out_pixels_before_and_after(base: Path, tmp_path: Path) -> None:
    from clearcube.model import fit

    phases: set[str] = set()
    result = fit(_cube(), base, tmp_path / "fitted.pt", steps=6, batch_size=2, patch_size=32,
                 held_out=0.35, seq_len=2, eval_samples=2, eval_steps=2,
                 progress=lambda phase, done, total: phases.add(phase))  # fmt: skip
    assert phases == {"before", "train", "after"}
    assert result.held_out_pixels > 0 and result.held_out_samples == 2
    assert math.isfinite(result.rmse_before) and math.isfinite(result.rmse_after)
    _net, cfg, meta = load_checkpoint(result.path)
    assert cfg == TINY and meta["step"] == 6  # same model, new weights
    record = read_checkpoint(result.path)["extra"]["fit"]
    assert record["rmse_before"] == result.rmse_before
    assert record["rmse_after"] == result.rmse_after
    assert not list(tmp_path.glob(".fit-*"))  # the run folder is cleaned up


def test_fit_cli_prints_the_figures_and_refuses_bad_input(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube_path = tmp_path / "cube.zarr"
    _cube().to_zarr(cube_path, zarr_format=3, consolidated=False)
    out = tmp_path / "fitted.pt"
    code = main(["fit", "--cube", str(cube_path), "--checkpoint", str(base), "--out", str(out),
                 "--steps", "4", "--batch-size", "2", "--patch-size", "32", "--held-out", "0.35",
                 "--json"])  # fmt: skip
    assert code == 0 and out.is_file()
    shown = json.loads(capsys.readouterr().out)
    assert shown["steps"] == 4 and shown["path"] == str(out)
    assert main(["fit", "--cube", str(tmp_path / "nope.zarr"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    code = main(["fit", "--cube", str(cube_path), "--checkpoint", str(base), "--out", str(out),
                 "--held-out", "0.9"])  # fmt: skip
    assert code == 2 and "held_out" in capsys.readouterr().err
    for flags, words in ((["--patch-size", "33", "--held-out", "0.35"], "multiple of"), (["--lr", "-1"], "lr must"),
                         (["--device", "warp"], "device")):  # fmt: skip
        code = main(["fit", "--cube", str(cube_path), "--checkpoint", str(base), "--out",
                     str(out), *flags])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    not_a_cube = tmp_path / "cube.txt"
    not_a_cube.write_text("x")
    code = main(["fit", "--cube", str(not_a_cube), "--checkpoint", str(base), "--out", str(out)])
    assert code == 2 and "not a readable Zarr cube" in capsys.readouterr().err


def test_an_eps_checkpoint_fits_on_eq_27_alone(tmp_path: Path) -> None:
    """x̂_0 from ε divides by √ᾱ, so the x̂_0-space multi-date loss would swamp Eq. 27."""
    from clearcube.model import fit

    eps_cfg = ModelConfig(unet=TINY.unet)  # ε, linear: the paper's recipe
    base = save_checkpoint(tmp_path / "eps.pt", UNet(eps_cfg.unet), eps_cfg, step=0)
    result = fit(_cube(), base, tmp_path / "nested" / "fitted.pt", steps=3, batch_size=2,
                 patch_size=32, held_out=0.35, seq_len=2, eval_samples=1, eval_steps=2)  # fmt: skip
    assert result.path.is_file()  # the missing parent folder was created
    extra = read_checkpoint(result.path)["extra"]
    assert extra["train_config"]["temporal_weight"] == 0.0


def test_held_out_rmse_scores_only_pixels_the_target_itself_shows(base: Path) -> None:
    """A target date may be a little cloudy; its cloudy pixels are no truth. Put an absurd
    target value in gap pixels that the target marks cloudy: the score must not see it."""
    from clearcube.model.fitting import held_out_rmse

    net, cfg, _ = load_checkpoint(base)
    ds = CubeDataset(_cube(), seq_len=2, patch_size=32, samples_per_date=1, seed=0)
    sample = dict(ds[0])
    gap = ~sample["known"].any(dim=0)
    assert gap.any()
    clean, n_clean = held_out_rmse(net, cfg, [sample], 2, 0, torch.device("cpu"))
    spoiled = dict(sample)
    target = spoiled["target_s2"].clone()
    rows = torch.nonzero(gap)[:5]
    target[:, rows[:, 0], rows[:, 1]] = 50.0  # far outside [-1, 1]
    spoiled["target_s2"] = target
    spoiled["target_known"] = sample["target_known"].clone()
    spoiled["target_known"][rows[:, 0], rows[:, 1]] = False
    score, n = held_out_rmse(net, cfg, [spoiled], 2, 0, torch.device("cpu"))
    assert n == n_clean - len(rows)
    assert math.isfinite(score) and score < 1.0  # the 50.0 pixels were left out
    # without the target's mask (as before the fix) the absurd values would dominate
    del spoiled["target_known"]
    assert held_out_rmse(net, cfg, [spoiled], 2, 0, torch.device("cpu"))[0] > max(1.0, 2 * score)
    assert clean < 1.0

"""CM-CR: the consistency function, the VP→VE teacher, Heun, the loss, PDMSR and `distill`."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_fit import _cube
from torch import Tensor

from clearcube import BadInputError
from clearcube.model import consistency as cm
from clearcube.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from clearcube.model.config import ConsistencyConfig, DiffusionConfig, ModelConfig, UNetConfig
from clearcube.model.data.cube_dataset import CubeDataset
from clearcube.model.distill import DistillSettings, distill, split_config
from clearcube.model.fill import check_sampler, fill_gaps
from clearcube.model.noise import CoordinateNoise
from clearcube.model.samplers import sample_pdmsr
from clearcube.model.schedule import from_config
from clearcube.model.train_config import TrainConfig
from clearcube.model.unet import UNet
from clearcube.pipeline.cli import main

TEACHER = ModelConfig(
    unet=UNetConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(),
                    norm_groups=4),
    diffusion=DiffusionConfig(schedule="cosine", prediction="v", sar_noise="clean"),
)  # fmt: skip
SIGMAS = cm.teacher_sigmas(from_config(TEACHER.diffusion))
CC = ConsistencyConfig(
    sigma_data=0.4, sigma_min=float(SIGMAS[0]), grid=cm.karras_grid(SIGMAS, 10), ladder_low=0.5
)
STUDENT = dataclasses.replace(TEACHER, consistency=CC)

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(b: int = 2, length: int = 2, c: int = 13, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    observed = torch.rand((b, length, c, size, size), generator=g) * 2 - 1
    known = torch.rand((b, length, 1, size, size), generator=g) > 0.6
    known[:, :, :, :4, :4] = False  # a corner no date sees
    sar = torch.rand((b, length, 2, size, size), generator=g) * 2 - 1
    return observed, known, sar


def test_the_boundary_condition_holds_exactly() -> None:
    torch.manual_seed(0)
    f = cm.ConsistencyFunction(UNet(STUDENT.unet).eval(), STUDENT)
    y = torch.randn(3, 13, 16, 16) * 5
    with torch.no_grad():
        at_min = f(y, torch.zeros(3, dtype=torch.int64), torch.randn(3, 2, 16, 16))
    assert torch.equal(at_min, y)  # c_skip = 1, c_out = 0 at σ_min, in floating point too
    c_skip, c_out, c_in = cm.boundary_coefficients(
        torch.tensor([CC.sigma_min, 1e6], dtype=torch.float64), CC
    )
    assert c_skip[0] == 1.0 and c_out[0] == 0.0
    assert c_skip[1] == pytest.approx(0.0, abs=1e-12) and c_out[1] == pytest.approx(CC.sigma_data)
    assert c_in[1] == pytest.approx(1e-6)


def test_the_karras_grid_is_snapped_to_teacher_steps_from_sigma_min_to_80() -> None:
    grid = cm.karras_grid(SIGMAS, 18)
    assert grid[0] == 0 and list(grid) == sorted(set(grid))
    assert abs(math.log(float(SIGMAS[grid[-1]]) / 80.0)) < 0.06  # the step nearest σ = 80
    # the Karras points (ρ = 7) each land on their nearest step: check one inner point
    i = 9 / 17
    karras = (80 ** (1 / 7) + i * (float(SIGMAS[0]) ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert cm.nearest_step(SIGMAS, karras) in grid
    with pytest.raises(BadInputError, match="N >= 2"):
        cm.karras_grid(SIGMAS, 1)


def test_the_teacher_in_ve_form_recovers_x0_from_an_oracle_v_network() -> None:
    """y = x_0 + σ ε; a network that outputs the true v of x_t = y/√(1+σ²) gives back x_0."""
    chain = from_config(TEACHER.diffusion)
    abar = chain.alphas_cumprod
    x0 = torch.rand(2, 13, 8, 8, dtype=torch.float64) * 1.6 - 0.8
    eps = torch.randn(2, 13, 8, 8, dtype=torch.float64)

    def oracle(x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        a = abar[t].reshape(-1, 1, 1, 1)
        noise = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return torch.cat([a.sqrt() * noise - (1 - a).sqrt() * x0, torch.zeros_like(x0)], dim=1)

    denoise = cm.teacher_denoiser(oracle, TEACHER, None)
    for step in (0, 300, 900):
        t = torch.full((2,), step)
        y = x0 + SIGMAS[step] * eps
        assert torch.allclose(denoise(y, t, torch.zeros(2, 2, 8, 8)), x0, atol=1e-9)


def test_heun_is_exact_when_the_denoiser_knows_x0() -> None:
    """dy/dσ = (y − x_0)/σ has y(σ) = x_0 + (σ/σ₁)(y₁ − x_0): linear in σ, so Heun is exact."""
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    y1 = x0 + 7.0 * torch.randn(2, 3, 4, 4, dtype=torch.float64)
    hi, lo = torch.full((2,), 800), torch.full((2,), 400)
    out = cm.heun_step(lambda y, t, c: x0, y1, hi, lo, torch.zeros(2, 2, 4, 4), SIGMAS)
    expected = x0 + (SIGMAS[400] / SIGMAS[800]) * (y1 - x0)
    assert torch.allclose(out, expected, atol=1e-12)


def test_the_loss_is_zero_for_an_oracle_and_trains_a_network() -> None:
    target = torch.rand(2, 13, 16, 16) * 2 - 1
    region = torch.zeros(2, 1, 16, 16, dtype=torch.bool)

    class Oracle(cm.ConsistencyFunction):
        def __call__(self, y: Tensor, step: Tensor, cond: Tensor) -> Tensor:
            return target + 0 * y

    oracle = Oracle(UNet(STUDENT.unet), STUDENT)
    g = torch.Generator().manual_seed(0)
    out = cm.distillation_losses(
        oracle, lambda y, t, c: target, target=target, cond=torch.zeros(2, 2, 16, 16),
        region=region, generator=g,
    )  # fmt: skip
    assert torch.equal(out["loss"], torch.zeros(2))
    torch.manual_seed(0)
    net = UNet(STUDENT.unet)
    f = cm.ConsistencyFunction(net, STUDENT)
    loss = cm.distillation_losses(
        f, lambda y, t, c: target, target=target, cond=torch.zeros(2, 2, 16, 16),
        region=region, generator=g, kind="pseudo_huber",
    )["loss"].mean()  # fmt: skip
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_pdmsr_gives_the_truth_for_an_oracle_and_keeps_the_fused_known_pixels() -> None:
    observed, known, sar = _inputs()
    truth = torch.rand(2, 13, 16, 16) * 1.8 - 0.9
    fused = (observed * known).sum(1) / known.sum(1).clamp(min=1)
    seen = known.any(1)
    f_oracle = cm.ConsistencyFunction(UNet(STUDENT.unet), STUDENT)
    for ladder in [(990,), cm.ladder_steps(f_oracle, 4)]:
        out = sample_pdmsr(
            lambda y, t, c: truth, ladder, SIGMAS, observed=observed, known=known, sar=sar,
            generator=torch.Generator().manual_seed(1), sigma_min=CC.sigma_min,
        )  # fmt: skip
        expected = torch.where(seen, fused, truth)
        assert torch.allclose(out, expected, atol=1e-6)
    torch.manual_seed(0)
    f = cm.ConsistencyFunction(UNet(STUDENT.unet).eval(), STUDENT)
    out = sample_pdmsr(
        f, cm.ladder_steps(f, 3), SIGMAS, observed=observed, known=known, sar=sar,
        generator=torch.Generator().manual_seed(1), sigma_min=CC.sigma_min,
    )  # fmt: skip
    assert torch.allclose(out.masked_select(seen.expand_as(out)), fused.masked_select(seen.expand_as(out)), atol=1e-6)  # fmt: skip


def test_pdmsr_calls_the_network_once_per_rung_and_is_deterministic() -> None:
    observed, known, sar = _inputs()
    torch.manual_seed(0)
    net = UNet(STUDENT.unet).eval()
    calls: list[int] = []

    def counting(x: Tensor, t: Tensor, c: Tensor) -> Tensor:
        calls.append(int(t[0]))
        out: Tensor = net(x, t, c)
        return out

    def run(k: int, sampler: str = "pdmsr") -> Tensor:
        return fill_gaps(
            counting, STUDENT, observed=observed, known=known, sar=sar,
            generator=CoordinateNoise(3), sampler=sampler, steps=k,  # type: ignore[arg-type]
        )  # fmt: skip

    one = run(1, "consistency")
    assert calls == [CC.grid[-1]]
    calls.clear()
    four = run(4)
    assert len(calls) == 4 and calls == sorted(calls, reverse=True) and calls[0] == CC.grid[-1]
    assert torch.equal(four, run(4)) and not torch.equal(one, four)


def test_ladders_snap_to_the_grid_and_bad_ones_are_refused() -> None:
    f = cm.ConsistencyFunction(UNet(STUDENT.unet), STUDENT)
    assert cm.ladder_steps(f, 1) == (CC.grid[-1],)
    four = cm.ladder_steps(f, 4)
    assert len(four) == 4 and four[0] == CC.grid[-1] and list(four) == sorted(four, reverse=True)
    assert abs(math.log(float(SIGMAS[four[-1]]) / CC.ladder_low)) < 1.0  # lowest rung near 0.5
    explicit = cm.ladder_steps(f, 0, (80.0, 2.1, 2.0))  # two levels on one grid point: once
    assert explicit[0] == CC.grid[-1] and len(explicit) == 2
    with pytest.raises(BadInputError, match="descending"):
        cm.ladder_steps(f, 0, (0.5, 2.0))


def test_samplers_that_do_not_fit_the_checkpoint_are_refused_in_one_line() -> None:
    with pytest.raises(
        BadInputError, match="consistency student; pass --sampler consistency or pdmsr"
    ):
        check_sampler(STUDENT, "ddim")
    with pytest.raises(BadInputError, match="diffusion model; pass --sampler ddim or ddpm"):
        check_sampler(TEACHER, "pdmsr")
    with pytest.raises(BadInputError, match="is itself a consistency student"):
        cm.student_from_teacher(STUDENT, CC)
    same_t = dataclasses.replace(TEACHER, diffusion=DiffusionConfig(prediction="v"))
    with pytest.raises(BadInputError, match="sar_noise: clean"):
        cm.student_from_teacher(same_t, CC)


def test_the_student_config_survives_a_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "s.pt", UNet(STUDENT.unet), STUDENT, step=3)
    _net, cfg, _ = load_checkpoint(path)
    assert cfg == STUDENT and cfg.is_consistency
    assert "consistency" not in TEACHER.to_dict()  # a diffusion model's dict is unchanged


# --- distill: a real (tiny) run, resumable, and the CLI -------------------------------------


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = UNet(TEACHER.unet)
    with torch.no_grad():  # the output layer starts at zero: give the teacher an opinion
        last = net.out[-1]
        assert isinstance(last, torch.nn.Conv2d)
        last.weight.normal_(0.0, 0.1)
    return save_checkpoint(tmp_path / "teacher.pt", net, TEACHER, step=0)


def _run(tmp_path: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        steps=4, batch_size=2, lr=1e-3, ema_rate=0.9, checkpoint_every=2, validate_every=2,
        val_batches=1, log_every=2, out_dir=str(tmp_path / "run"), device="cpu",
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _sets() -> tuple[CubeDataset, CubeDataset]:
    ds = CubeDataset(_cube(size=48), seq_len=2, patch_size=16, samples_per_date=2, seed=0)
    return ds, ds


SETTINGS = DistillSettings(grid_points=6, sigma_data_samples=4, validate_calls=(1, 2))


def test_distill_writes_a_student_and_resumes_exactly(teacher: Path, tmp_path: Path) -> None:
    out = distill(teacher, _run(tmp_path / "a"), SETTINGS, tmp_path / "a.pt", datasets=_sets())
    _net, cfg, meta = load_checkpoint(out)
    assert cfg.is_consistency and meta["step"] == 4
    assert cfg.consistency is not None and len(cfg.consistency.grid) >= 2
    assert cfg.consistency.teacher_sha256 == meta["extra"]["distill"]["teacher_sha256"]
    assert "val_cm1_rmse" in meta["extra"]["logs"] and "val_cm2_rmse" in meta["extra"]["logs"]
    # σ_d is the RMS of the training targets in diffusion space: recompute it independently
    picked = range(0, len(_sets()[0]), max(len(_sets()[0]) // 4, 1))[:4]
    targets = np.stack([_sets()[0][i]["target_s2"].numpy() for i in picked])
    assert cfg.consistency.sigma_data == pytest.approx(np.sqrt(np.mean(targets.astype(np.float64) ** 2)), abs=1e-6)  # fmt: skip
    # two legs of 2 steps give exactly the weights of one run of 4
    distill(teacher, _run(tmp_path / "b", steps=2), SETTINGS, tmp_path / "b.pt", datasets=_sets())
    distill(teacher, _run(tmp_path / "b", steps=4, resume="auto"), SETTINGS, tmp_path / "b.pt",
            datasets=_sets())  # fmt: skip
    a, b = read_checkpoint(tmp_path / "a.pt"), read_checkpoint(tmp_path / "b.pt")
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_the_student_starts_at_the_teachers_one_step_estimate(
    teacher: Path, tmp_path: Path
) -> None:
    """At σ_max the initial student's f equals the teacher's x̂_0 up to the c_skip term."""
    distill(teacher, _run(tmp_path, steps=1), SETTINGS, tmp_path / "s.pt", datasets=_sets())
    init, cfg, _ = load_checkpoint(tmp_path / "run" / "init.pt")
    t_net, _, _ = load_checkpoint(teacher)
    assert cfg.consistency is not None
    top = torch.full((2,), cfg.consistency.grid[-1])
    y = torch.randn(2, 13, 16, 16) * float(SIGMAS[top[0]])
    cond = torch.zeros(2, 2, 16, 16)
    with torch.no_grad():
        f = cm.ConsistencyFunction(init, cfg)(y, top, cond)
        d = cm.teacher_denoiser(t_net, TEACHER, (torch.full((13, 1, 1), -1e9), torch.full((13, 1, 1), 1e9)))(y, top, cond)  # fmt: skip
    c_skip = cm.boundary_coefficients(SIGMAS[top], cfg.consistency)[0][0]
    s = float(SIGMAS[top[0]])
    # teacher: y/(1+σ²) − σ/√(1+σ²)·v; student: c_skip·y − c_out/σ_d·v
    _, c_out, _ = cm.boundary_coefficients(SIGMAS[top], cfg.consistency)
    v = (y / (1 + s**2) - d) * math.sqrt(1 + s**2) / s
    expected = float(c_skip) * y - float(c_out[0]) / cfg.consistency.sigma_data * v
    assert torch.allclose(f, expected, atol=1e-4)
    assert torch.allclose(f, d, atol=0.05 * float(d.abs().max()) + 1e-3)


def test_split_config_refuses_a_model_key() -> None:
    with pytest.raises(BadInputError, match="the teacher checkpoint decides"):
        split_config({"model": {}, "steps": 3})
    cfg, settings = split_config({"steps": 3, "distill": {"grid_points": 20}})
    assert cfg.steps == 3 and settings.grid_points == 20
    with pytest.raises(BadInputError, match="unknown key"):
        split_config({"distill": {"grid": 3}})


def test_the_cli_refuses_bad_input_in_one_line(
    teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "d.yaml"
    cfg.write_text("steps: 2\nmodel: {}\n")
    code = main(["distill", "--teacher", str(teacher), "--config", str(cfg), "--out", str(tmp_path / "s.pt")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'model' is not allowed" in err[0]
    code = main(["distill", "--teacher", str(tmp_path / "nope.pt"), "--config", str(cfg), "--out", "s.pt"])  # fmt: skip
    assert code == 2 and "does not exist" in capsys.readouterr().err

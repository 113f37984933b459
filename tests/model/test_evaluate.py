"""The evaluation runner, report writer and `clearcube evaluate`, in-process on a tiny set."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearcube.model.evaluation import (
    EvalSample,
    baseline_method,
    evaluate,
    load_samples,
    save_samples,
)
from clearcube.model.evaluation.report import coverage_bin, summarize
from clearcube.pipeline.cli import main


def _sample(name: str, length: int, *, target_in_inputs: bool, seed: int) -> EvalSample:
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.02, 0.4, size=(13, 24, 24)).astype(np.float32)
    cloud = np.zeros((length, 24, 24), bool)
    cloud[:, :8, :] = True  # top third cloudy in every date
    cloud[0, 8:16, :] = True  # middle third cloudy in date 0 only
    inputs = (
        np.repeat(target[None], length, axis=0)
        + 0.01 * np.arange(length, dtype=np.float32)[:, None, None, None]
    )
    inputs[cloud[:, None].repeat(13, axis=1)] = 0.8  # opaque cloud
    sar = rng.normal(-12, 3, size=(length, 2, 24, 24)).astype(np.float32)
    return EvalSample(
        name, inputs, cloud, target, sar, target_in_inputs=target_in_inputs, source="synthetic"
    )


@pytest.fixture()
def tiny_set(tmp_path: Path) -> Path:
    samples = [
        _sample("a", 2, target_in_inputs=True, seed=1),
        _sample("b", 3, target_in_inputs=False, seed=2),
        _sample("c", 3, target_in_inputs=True, seed=3),
    ]
    folder = tmp_path / "set"
    save_samples(samples, folder)
    return folder


def test_save_and_load_round_trip(tiny_set: Path) -> None:
    loaded = {s.name: s for s in load_samples(tiny_set)}
    assert sorted(loaded) == ["a", "b", "c"]
    original = _sample("b", 3, target_in_inputs=False, seed=2)
    np.testing.assert_array_equal(loaded["b"].inputs, original.inputs)
    np.testing.assert_array_equal(loaded["b"].cloud, original.cloud)
    assert (
        loaded["b"].sar is not None
        and not loaded["b"].target_in_inputs
        and loaded["a"].target_in_inputs
    )
    assert loaded["b"].cloud_coverage == pytest.approx((3 * 8 + 8) / (3 * 24))


def test_mosaicing_scores_match_hand_computation() -> None:
    s = _sample("b", 3, target_in_inputs=False, seed=2)
    results, _ = evaluate([s], {"mosaicing": baseline_method("mosaicing")})
    m = results[0].metrics
    # cloudy third is filled with 0.5; the middle third is the mean of dates 1, 2 (+0.015);
    # the bottom third is the mean of dates 0, 1, 2 (+0.01)
    assert m.rmse_cloudy == pytest.approx(
        float(np.sqrt(np.mean((0.5 - s.target[:, :8]) ** 2))), rel=1e-5
    )
    expected_clear = np.sqrt((0.015**2 + 0.01**2) / 2)
    assert m.rmse_clear == pytest.approx(expected_clear, rel=1e-4)
    assert results[0].cloudy_fraction == pytest.approx(1 / 3)


def test_coverage_bins_follow_table_3() -> None:
    assert coverage_bin(0.0) == "0-10%"
    assert coverage_bin(0.3) == "30-40%"
    assert coverage_bin(0.999) == "90-100%"
    assert coverage_bin(1.0) == "90-100%"


def test_summary_splits_by_target_in_inputs() -> None:
    samples = [
        _sample("a", 2, target_in_inputs=True, seed=1),
        _sample("b", 3, target_in_inputs=False, seed=2),
    ]
    results, _ = evaluate(samples, {"least-cloudy": baseline_method("least-cloudy")})
    rows = {r["target_in_inputs"]: r for r in summarize(results)["target_in_inputs"]}
    assert rows[True]["n"] == 1 and rows[False]["n"] == 1
    assert rows[False]["rmse_all"] == pytest.approx(results[1].metrics.rmse_all)


def test_evaluate_cli_writes_parseable_reports(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    docs = tmp_path / "docs" / "EVALUATION.md"
    code = main(
        [
            "evaluate",
            "--data",
            str(tiny_set),
            "--out",
            str(out),
            "--lengths",
            "2,3",
            "--write-docs",
            str(docs),
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {
        "samples": 3,
        "target_in_inputs": 2,
        "by_length": {"2": 1, "3": 2},
        "by_source": {"synthetic": 3},
    }
    table1 = summary["tables"]["table1"]
    assert [r["method"] for r in table1] == [
        "least-cloudy",
        "mosaicing",
        "median",
        "clear-mean",
        "geomedian",
    ]  # the default: every baseline
    assert all(r["length"] == 2 and r["n"] == 1 for r in table1)
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_length = [r for r in rows if r["table"] == "by_length" and r["method"] == "mosaicing"]
    assert [r["length"] for r in by_length] == ["2", "3"] and by_length[1]["n"] == "2"
    assert all(math.isfinite(float(r["ssim"])) for r in rows)
    with (out / "samples.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3 * 5  # 3 samples x the 5 default baselines
    markdown = (out / "report.md").read_text()
    assert "## Table 1" in markdown and "NRMSE(Cloudy)" in markdown
    assert docs.read_text() == markdown
    with Image.open(out / "examples.png") as grid:
        assert grid.width > 128 and grid.height > 128


def test_evaluate_cli_only_selected_lengths(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "out3"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(tiny_set),
                "--out",
                str(out),
                "--lengths",
                "3",
                "--methods",
                "median",
            ]
        )
        == 0
    )
    assert json.loads((out / "summary.json").read_text())["counts"]["samples"] == 2


def test_evaluate_cli_bad_inputs_exit_2(
    tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["evaluate", "--data", str(tiny_set), "--out", str(tmp_path), "--methods", "magic"])
        == 2
    )
    assert "unknown method" in capsys.readouterr().err
    assert (
        main(["evaluate", "--data", str(tiny_set), "--out", str(tmp_path), "--methods", "model"])
        == 2
    )
    assert "needs a checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2


def test_model_fill_with_k_samples_is_the_mean_of_k_draws(tmp_path: Path) -> None:
    """``--samples K`` scores what the pipeline writes: the mean of K SeqTIS draws."""
    import zlib

    import torch

    from clearcube.model.checkpoint import load_checkpoint, save_checkpoint
    from clearcube.model.config import preset
    from clearcube.model.evaluation.model_method import fill_sample
    from clearcube.model.evaluation.samples import EvalSample
    from clearcube.model.fill import fill_gaps
    from clearcube.model.unet import UNet

    torch.manual_seed(0)
    cfg = preset("cpu-tiny")
    net, cfg, _ = load_checkpoint(save_checkpoint(tmp_path / "t.pt", UNet(cfg.unet), cfg, step=0))
    rng = np.random.default_rng(0)
    cloud = np.zeros((2, 16, 16), dtype=bool)
    cloud[:, 4:12, 4:12] = True
    sample = EvalSample(
        name="k", inputs=rng.uniform(0.05, 0.3, (2, 13, 16, 16)).astype(np.float32),
        cloud=cloud, target=rng.uniform(0.05, 0.3, (13, 16, 16)).astype(np.float32),
    )  # fmt: skip
    kw = {"sampler": "ddim", "steps": 2, "seed": 3, "device": "cpu"}
    one, two = fill_sample(net, cfg, sample, **kw), fill_sample(net, cfg, sample, samples=2, **kw)
    # the oracle: two draws from one generator seeded as the method seeds it
    generator = torch.Generator().manual_seed(3 ^ zlib.crc32(b"k"))
    draws = []
    for _ in range(2):
        x0 = fill_gaps(
            net, cfg, observed=torch.from_numpy(sample.inputs * 2 - 1)[None],
            known=torch.from_numpy(~cloud)[None, :, None], sar=torch.zeros(1, 2, 2, 16, 16),
            generator=generator, sampler="ddim", steps=2,
        )  # fmt: skip
        draws.append(((x0[0].clamp(-1, 1) + 1) / 2).double().numpy())
    np.testing.assert_allclose(one, draws[0], atol=1e-6)
    np.testing.assert_allclose(two, (draws[0] + draws[1]) / 2, atol=1e-6)
    assert not np.allclose(two[:, 4:12, 4:12], one[:, 4:12, 4:12])  # the second draw counts

"""The "fitted" protocol: folds by tile, and no pixel hidden in every input reaches training."""

from __future__ import annotations

import numpy as np
import torch

from clearcube.model.evaluation.fitted import ClearPixels, tile_fold
from clearcube.model.evaluation.samples import EvalSample

MARK = 0.987  # a reflectance no clear pixel of these samples has


def _sample(row: int, col: int, seed: int) -> EvalSample:
    rng = np.random.default_rng(seed)
    scene = rng.uniform(0.05, 0.3, size=(13, 64, 64)).astype(np.float32)
    cloud = np.zeros((2, 64, 64), dtype=bool)
    cloud[0, :40] = True
    cloud[1, 20:] = True  # rows 20..39 are hidden in both inputs
    inputs = np.stack([scene, scene])
    inputs[:, :, 20:40] = MARK  # what a leak of the hidden pixels would look like
    return EvalSample(
        name=f"t{row}_{col}", inputs=inputs, cloud=cloud, target=scene,
        sar=rng.uniform(-20, -5, size=(2, 2, 64, 64)).astype(np.float32),
        meta={"window": f"{row},{col},64"},
    )  # fmt: skip


def test_tiles_fall_into_two_chessboard_folds_and_sources_without_a_grid_into_none() -> None:
    assert [tile_fold(_sample(r, c, 0)) for r, c in ((0, 0), (0, 64), (64, 0), (64, 64))] == [
        0, 1, 1, 0,
    ]  # fmt: skip
    no_grid = _sample(0, 0, 0)
    assert tile_fold(EvalSample(name="e", inputs=no_grid.inputs, cloud=no_grid.cloud,
                                target=no_grid.target)) is None  # fmt: skip


def test_pixels_hidden_in_every_input_never_reach_a_training_crop() -> None:
    data = ClearPixels([_sample(0, 0, 1), _sample(0, 64, 2)], patch=32, n=64)
    mark = MARK * 2.0 - 1.0
    for i in range(len(data)):
        item = data[i]
        assert not torch.isclose(item["target_s2"], torch.tensor(mark)).any()
        hidden = item["weight"][0] == 0
        if hidden.any():  # hidden pixels carry one value per band (the seen pixels' mean)
            values = item["target_s2"][:, hidden]
            assert torch.allclose(values, values[:, :1].expand_as(values))
    assert any(bool((data[i]["weight"] == 0).any()) for i in range(len(data)))


def test_each_fold_is_filled_by_the_model_fitted_on_the_other_fold(tmp_path, monkeypatch) -> None:
    """The wiring of the cross-fit: the model that fills a sample never trained on its fold.

    ``train``, ``load_checkpoint`` and ``fill_sample`` are replaced by recorders: each fitted
    "model" is the set of sample names its training data held, and a fill reports it.
    """
    from clearcube.model.checkpoint import save_checkpoint
    from clearcube.model.config import preset
    from clearcube.model.evaluation import fitted
    from clearcube.model.unet import UNet

    cfg = preset("cpu-tiny")
    base = save_checkpoint(tmp_path / "base.pt", UNet(cfg.unet), cfg, step=0)
    samples = [_sample(r, c, 10 * r + c) for r in (0, 64, 128) for c in (0, 64)]
    trained_on: dict[str, frozenset[str]] = {}

    def fake_train(train_cfg, datasets):
        trained_on[train_cfg.out_dir] = datasets[0]  # the names the training data came from
        return train_cfg.out_dir

    monkeypatch.setattr(
        fitted, "ClearPixels", lambda others, seed: frozenset(s.name for s in others)
    )
    monkeypatch.setattr(fitted, "train", fake_train)
    monkeypatch.setattr(fitted, "load_checkpoint", lambda path, device: (trained_on[path], cfg, {}))
    monkeypatch.setattr(fitted, "fill_sample", lambda net, cfg, sample, **kw: (sample.name, net))
    run = fitted.fitted_method(str(base), samples, fit_steps=1)
    assert len(trained_on) == 2
    for sample in samples:
        name, model = run(sample)
        fold = tile_fold(sample)
        assert name == sample.name and model
        assert all(tile_fold(s) != fold for s in samples if s.name in model), sample.name
        assert model == {s.name for s in samples if tile_fold(s) != fold}

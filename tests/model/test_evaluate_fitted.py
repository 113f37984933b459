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

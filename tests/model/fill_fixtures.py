"""A structured toy distribution for fill tests, generated with fixed seeds (no files).

Each scene has three land-cover classes cut from a smooth random field (sharp edges between
smooth regions), a fine texture field, three optical bands whose reflectance is set by the
class (as Sentinel-2 bands are by land cover) and one SAR channel whose level is set by the
class too, plus speckle-like noise. Inside a gap the SAR therefore tells which class lies
there: a model that uses it beats any fill computed from the clear pixels alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from clearcube.model.config import DiffusionConfig, ModelConfig, UNetConfig
from clearcube.model.scaling import fit_scaling

#: Training crop side and evaluation scene side; the gap is a centred square.
CROP, SCENE, GAP = 32, 64, 32
#: Reflectance of each class (rows) in each band (columns), like water / vegetation / soil.
REFLECTANCE = np.array([[0.05, 0.08, 0.06], [0.10, 0.09, 0.30], [0.25, 0.22, 0.20]], np.float32)
#: SAR level of each class on the paper's [-1, 1] scale.
SAR_LEVEL = np.array([-0.8, -0.3, 0.3], np.float32)


def toy_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(optical (3, size, size), sar (1, size, size))`` on the paper's [-1, 1] scale."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 10, mode="wrap")
    field = (field - field.mean()) / (field.std() + 1e-9)
    classes = np.digitize(field, [-0.4, 0.5])
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)), 2, mode="wrap")
    texture /= texture.std() + 1e-9
    reflectance = REFLECTANCE[classes].transpose(2, 0, 1) + 0.015 * texture[None]
    sar = SAR_LEVEL[classes][None] + 0.05 * rng.standard_normal((1, size, size))
    return (reflectance * 2 - 1).astype(np.float32), sar.astype(np.float32)


class ToyScenes(Dataset[dict[str, torch.Tensor]]):
    """Clear training pairs in the sample format of the training loop (L = 1, all clear)."""

    def __init__(self, n: int, size: int = CROP, seed: int = 7):
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x, a = toy_scene(np.random.default_rng([self.seed, i]), self.size)
        return {
            "target_s2": torch.from_numpy(x),
            "target_s1": torch.from_numpy(a),
            "inputs_s2": torch.from_numpy(x[None]),
            "inputs_s1": torch.from_numpy(a[None]),
            "known": torch.ones((1, self.size, self.size), dtype=torch.bool),
        }


def toy_model_config() -> ModelConfig:
    """The demo recipe (v-prediction, cosine β, clean SAR, standardised bands) at toy size."""
    samples = torch.stack([ToyScenes(64)[i]["target_s2"] for i in range(64)])
    return ModelConfig(
        unet=UNetConfig(
            in_channels=3,
            cond_channels=1,
            model_channels=16,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_ds=(),
            num_heads=1,
            norm_groups=8,
            image_size=CROP,
        ),
        diffusion=DiffusionConfig(schedule="cosine", prediction="v", sar_noise="clean"),
        s2_bands=("red", "green", "nir"),
        s1_bands=("vv",),
        scaling=fit_scaling(samples),
    )


def roughness(image: np.ndarray, where: np.ndarray) -> float:
    """Mean absolute difference of horizontal neighbours inside ``where`` over the std there.

    ``image: (C, H, W)``, ``where: (H, W)`` bool. Pixel noise scores ~1.1, smooth fields ~0.1.
    """
    pairs = where[:, 1:] & where[:, :-1]
    step = np.abs(image[:, :, 1:] - image[:, :, :-1])[:, pairs].mean()
    return float(step / (image[:, where].std() + 1e-12))


def clear_mean_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Every unknown pixel set to the per-band mean of the known ones (the baseline to beat)."""
    mean = image[:, known].mean(axis=1)
    return np.where(known[None], image, mean[:, None, None]).astype(np.float32)


def save_grid(rows: list[tuple[np.ndarray, ...]], path: Path) -> None:
    """A PNG with one row per scene: input | SAR | truth | clear-mean fill | model fill."""
    from PIL import Image

    def rgb(x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 1:  # SAR: its [-1, 1] range as grey
            v = np.repeat(np.clip((x + 1) / 2, 0, 1), 3, axis=0)
        else:  # false colour nir/green/red, reflectance 0-0.35; NaN (unknown) white
            v = np.nan_to_num(np.clip((x[[2, 1, 0]] + 1) / 2 / 0.35, 0, 1), nan=1.0)
        return (np.moveaxis(v, 0, -1) * 255).astype(np.uint8)

    grid = np.concatenate([np.concatenate([rgb(p) for p in row], axis=1) for row in rows], axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)

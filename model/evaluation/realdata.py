"""The real-data evaluation set: real clear Sentinel-2 targets under real cloud masks.

Built from ``$CLEARCUBE_TEST_DATA`` (the shared sample data, never committed):

* **sen1floods11**: the clear Sentinel-2 L1C scene of 2019-09-18 (13 bands, DN / 10000, clipped
  to [0, 1]) with its co-located Sentinel-1 VV/VH (dB, 2019-09-17), cut into ``patch``×``patch``
  tiles. It is one date, so every input date is that scene under a different real cloud mask and
  ``target_in_inputs`` is True for all of them; the SAR of the one S1 date is repeated for every
  input date. Evaluation only: never train or tune on it.
* **eolearn**: five real L1C dates of one 101×100 px area (2015-07-11, 07-31, 08-20, 08-30,
  09-09; 07-31 and 08-20 are *really* fully cloudy), centre-cropped to ``eolearn_patch`` px. Each
  clear date is a target once; input sequences are every set of L of the five dates, so some
  include the target date itself (flagged, as SEN12MS-CR-TS sometimes does) and some do not.
  The real cloudy dates enter as they are, with their own s2cloudless mask (all cloud).

How clouds are laid over a clear date: a real s2cloudless mask (CLM) and probability (CLP) of
another eo-learn date (2015-09-19 … 2017-12-22) is drawn, turned by a random multiple of 90° and
flipped at random, and (for sen1floods11) resampled from 101×100 to the patch size (nearest
neighbour for CLM, bilinear for CLP). Cloudy pixels become ``(1 - α)·clear + α·cloud`` with
opacity ``α = clip(1.5·CLP, 0.3, 1)`` (dense cores opaque, thin edges see-through), where ``cloud``
is the real radiance of the fully cloudy 2015-08-20 scene (CLP 0.97), transformed like the mask.
Cloud shadows are not simulated. Masks are drawn from the partly cloudy dates (so no input is
the target unchanged, and coverage spreads over 0–100 %), except for eo-learn inputs other than
the target date, which draw from every date (clear and fully cloudy ones included). Everything
is seeded: one ``seed`` gives the same set on every machine.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from scipy.ndimage import zoom

from clearcube import BadInputError
from clearcube.bands import DN_PER_REFLECTANCE
from clearcube.model.evaluation.samples import EvalSample

#: Array index of each date in REFERENCE_SCENES.npy, in date order.
EOLEARN_ORDER = (4, 1, 0, 3, 2)
EOLEARN_DATES = ("2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30", "2015-09-09")
EOLEARN_CLEAR = (0, 3, 4)  # date positions of the clear scenes
CLOUD_LAYER_DATE = 2  # 2015-08-20, fully cloudy: its radiance is the cloud layer
N_REFERENCE = 5  # the first 5 mask dates are the reference scenes themselves

SEN1FLOODS11_S2 = "sen1floods11-spain/Spain_7370579_S2Hand.tif"
SEN1FLOODS11_S1 = "sen1floods11-spain/Spain_7370579_S1Hand.tif"


@dataclass(frozen=True)
class CloudSource:
    """Real cloud masks and the real cloud radiance laid over clear scenes."""

    clm: np.ndarray
    """(N, H, W) bool s2cloudless masks, True = cloud."""
    clp: np.ndarray
    """(N, H, W) float32 s2cloudless cloud probabilities."""
    dates: tuple[str, ...]
    """Acquisition date of each mask."""
    layer: np.ndarray
    """(C, H, W) float32 radiance of a fully cloudy real scene."""


def cloud_opacity(clm: np.ndarray, clp: np.ndarray) -> np.ndarray:
    """Opacity α in [0, 1]: ``clip(1.5·CLP, 0.3, 1)`` on cloud pixels, 0 elsewhere."""
    return np.where(clm, np.clip(1.5 * clp, 0.3, 1.0), 0.0).astype(np.float32)


def overlay_clouds(
    clear: np.ndarray, clm: np.ndarray, clp: np.ndarray, layer: np.ndarray
) -> np.ndarray:
    """Lay a real cloud over a clear (C, H, W) scene: ``(1 - α)·clear + α·layer``."""
    alpha = cloud_opacity(clm, clp)[None]
    cloudy: np.ndarray = ((1.0 - alpha) * clear + alpha * layer).astype(np.float32)
    return cloudy


def _transform(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random rotation (k·90°) and flip for every array (on its last two axes)."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = [np.rot90(a, k, axes=(-2, -1)) for a in arrays]
    return [np.ascontiguousarray(a[..., ::-1] if flip else a) for a in out]


def _resize(a: np.ndarray, h: int, w: int, order: int) -> np.ndarray:
    factors = (1.0,) * (a.ndim - 2) + (h / a.shape[-2], w / a.shape[-1])
    resized: np.ndarray = zoom(a, factors, order=order, grid_mode=True, mode="nearest")
    return resized


def draw_cloud(
    source: CloudSource, pool: np.ndarray, h: int, w: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Draw one mask date from ``pool`` and fit mask, probability and layer to (h, w).

    Masks larger than (h, w) are cropped at a random offset; smaller ones are resampled.

    Returns:
        clm (h, w) bool, clp (h, w), layer (C, h, w), and the mask's date.
    """
    i = int(rng.choice(pool))
    clm, clp, layer = source.clm[i], source.clp[i], source.layer
    sh, sw = clm.shape
    if sh >= h and sw >= w:
        y0, x0 = int(rng.integers(sh - h + 1)), int(rng.integers(sw - w + 1))
        win = (slice(y0, y0 + h), slice(x0, x0 + w))
        clm, clp, layer = clm[win], clp[win], layer[(slice(None), *win)]
    else:
        clm = _resize(clm.astype(np.uint8), h, w, 0).astype(bool)
        clp, layer = _resize(clp, h, w, 1), _resize(layer, h, w, 1)
    clm, clp, layer = _transform([clm, clp, layer], rng)
    return clm, clp, layer, source.dates[i]


def load_eolearn(root: Path) -> tuple[np.ndarray, CloudSource]:
    """The five eo-learn scenes in date order (5, 13, H, W) and the real cloud source."""
    base = root / "eolearn-slovenia"
    scenes = np.load(base / "REFERENCE_SCENES.npy")[list(EOLEARN_ORDER)]
    scenes = np.clip(np.moveaxis(scenes, -1, 1), 0.0, 1.0).astype(np.float32)
    dates = tuple(json.loads((base / "timestamps.json").read_text()))
    source = CloudSource(
        clm=np.load(base / "CLM.npy")[..., 0].astype(bool),
        clp=np.load(base / "CLP.npy")[..., 0].astype(np.float32),
        dates=tuple(d[:10] for d in dates),
        layer=scenes[CLOUD_LAYER_DATE],
    )
    return scenes, source


def _pools(source: CloudSource) -> tuple[np.ndarray, np.ndarray]:
    """Mask dates usable as overlays: (every non-reference date, the partly cloudy ones)."""
    every = np.arange(N_REFERENCE, source.clm.shape[0])
    fraction = source.clm[every].mean(axis=(1, 2))
    return every, every[(fraction > 0) & (fraction < 1)]


def eolearn_samples(
    scenes: np.ndarray,
    source: CloudSource,
    *,
    lengths: tuple[int, ...],
    patch: int,
    rng: np.random.Generator,
) -> list[EvalSample]:
    """Sequences over the five eo-learn dates, each clear date a target (module docstring)."""
    every, cloudy_pool = _pools(source)
    h, w = scenes.shape[-2:]
    y0, x0 = (h - patch) // 2, (w - patch) // 2
    crop = (slice(y0, y0 + patch), slice(x0, x0 + patch))
    real_clm = source.clm[:N_REFERENCE]  # masks of the five dates, same date order as the scenes
    samples = []
    for target, length in itertools.product(EOLEARN_CLEAR, lengths):
        for dates in itertools.combinations(range(len(EOLEARN_DATES)), length):
            inputs, cloud, mask_dates = [], [], []
            for d in dates:
                clear = scenes[d][(slice(None), *crop)]
                if d not in EOLEARN_CLEAR:  # a real cloudy date: as observed
                    inputs.append(clear)
                    cloud.append(real_clm[d][crop])
                    mask_dates.append(EOLEARN_DATES[d])
                    continue
                pool = cloudy_pool if d == target else every
                clm, clp, layer, mdate = draw_cloud(source, pool, patch, patch, rng)
                inputs.append(overlay_clouds(clear, clm, clp, layer))
                cloud.append(clm)
                mask_dates.append(mdate)
            tag = "-".join(EOLEARN_DATES[d][5:] for d in dates)
            samples.append(
                EvalSample(
                    name=f"eolearn_t{EOLEARN_DATES[target]}_L{length}_{tag}",
                    inputs=np.stack(inputs),
                    cloud=np.stack(cloud),
                    target=scenes[target][(slice(None), *crop)].copy(),
                    target_in_inputs=target in dates,
                    source="eolearn",
                    meta={
                        "target_date": EOLEARN_DATES[target],
                        "input_dates": ",".join(EOLEARN_DATES[d] for d in dates),
                        "mask_dates": ",".join(mask_dates),
                    },
                )
            )
    return samples


def sen1floods11_samples(
    root: Path,
    source: CloudSource,
    *,
    lengths: tuple[int, ...],
    patch: int,
    rng: np.random.Generator,
) -> list[EvalSample]:
    """The Sen1Floods11 S1/S2 pair cut into tiles, under L real masks each (module docstring)."""
    with rasterio.open(root / SEN1FLOODS11_S2) as src:
        s2 = np.clip(src.read().astype(np.float32) / DN_PER_REFLECTANCE, 0.0, 1.0)
    with rasterio.open(root / SEN1FLOODS11_S1) as src:
        s1 = src.read().astype(np.float32)
    _, cloudy_pool = _pools(source)
    h, w = s2.shape[-2:]
    samples = []
    for (r, c), length in itertools.product(
        itertools.product(range(0, h - patch + 1, patch), range(0, w - patch + 1, patch)), lengths
    ):
        win = (slice(None), slice(r, r + patch), slice(c, c + patch))
        clear, sar = s2[win], s1[win]
        draws = [draw_cloud(source, cloudy_pool, patch, patch, rng) for _ in range(length)]
        samples.append(
            EvalSample(
                name=f"sen1floods11_r{r:03d}c{c:03d}_L{length}",
                inputs=np.stack([overlay_clouds(clear, m, p, lay) for m, p, lay, _ in draws]),
                cloud=np.stack([m for m, _, _, _ in draws]),
                target=clear.copy(),
                sar=np.repeat(sar[None], length, axis=0),
                target_in_inputs=True,
                source="sen1floods11",
                meta={
                    "target_date": "2019-09-18",
                    "window": f"{r},{c},{patch}",
                    "mask_dates": ",".join(d for *_, d in draws),
                },
            )
        )
    return samples


def build_real_set(
    root: str | os.PathLike[str] | None = None,
    *,
    lengths: tuple[int, ...] = (3, 4, 5),
    patch: int = 128,
    eolearn_patch: int = 96,
    seed: int = 0,
) -> list[EvalSample]:
    """Build the real-data evaluation set (module docstring), deterministic for a seed.

    Args:
        root: the shared data folder; default ``$CLEARCUBE_TEST_DATA``.
        lengths: input sequence lengths L (each 1…5).
        patch: side of the Sen1Floods11 tiles (divides 512 for full coverage).
        eolearn_patch: side of the centre crop of the 101×100 eo-learn area.
        seed: seed of every random draw.
    """
    root = Path(root or os.environ.get("CLEARCUBE_TEST_DATA", ""))
    if not (root / "eolearn-slovenia" / "CLM.npy").is_file():
        raise BadInputError(
            f"no real sample data under '{root}'; set CLEARCUBE_TEST_DATA to the shared data folder"
        )
    if not lengths or min(lengths) < 1 or max(lengths) > len(EOLEARN_DATES):
        raise BadInputError(f"lengths must lie in 1..{len(EOLEARN_DATES)}; got {lengths}")
    if not 1 <= eolearn_patch <= 100 or patch < 1:
        raise BadInputError(
            f"patch sizes must be positive and eolearn_patch <= 100; got {patch}, {eolearn_patch}"
        )
    rng = np.random.default_rng(seed)
    scenes, source = load_eolearn(root)
    samples = sen1floods11_samples(root, source, lengths=lengths, patch=patch, rng=rng)
    samples += eolearn_samples(scenes, source, lengths=lengths, patch=eolearn_patch, rng=rng)
    return samples

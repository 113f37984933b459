#!/usr/bin/env python3
"""Compare simulated training landscapes with one real Sentinel-1/2 patch (statistics only).

    CLEARCUBE_TEST_DATA=../shared/data python scripts/compare-realism.py [PICTURE.png]

The real side is the SEN12MS-CR patch of the shared data (not an evaluation set), its clear
pixels chosen by s2cloudless; the simulated side is generator seed 1's clearest date, as drawn and as reworked by
``clearcube.model.data.simulated.REALISM`` (what training sees). Printed:
per-band reflectance mean and spatial std, 10 m roughness (mean |horizontal neighbour
difference| / std), SAR level and spread, and the SAR-NIR correlation. model/README.md records
the figures and what they say about the simulator.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import rasterio
from PIL import Image

from clearcube.bands import S2_BANDS
from clearcube.model.data.clouds import s2cloudless_cloud
from clearcube.model.data.simulated import REALISM, simulated_cube

root = os.path.join(os.environ["CLEARCUBE_TEST_DATA"], "sen12mscr-patch") + "/"
with rasterio.open(root + "ROIs1868_summer_s2_cloudy_19_p30.tif") as f:
    s2r = f.read().astype(np.float32)
with rasterio.open(root + "ROIs1868_summer_s1_19_p30.tif") as f:
    s1r = f.read().astype(np.float32)
cl = s2cloudless_cloud(s2r[None].astype(np.uint16), S2_BANDS)[0]
clear_r = ~cl


def stats(s2, s1, m, name):
    r = s2 / 1e4
    mean = r[:, m].mean(1)
    std = r[:, m].std(1)
    pairs = m[:, 1:] & m[:, :-1]
    rough = [
        float(np.abs(r[b][:, 1:] - r[b][:, :-1])[pairs].mean() / (r[b][m].std() + 1e-9))
        for b in (1, 2, 3, 7)
    ]
    nir = r[7][m]
    vv = s1[0][m]
    vh = s1[1][m]
    print(f"{name}: clear {m.mean():.2f}")
    print("  mean refl B02 B03 B04 B08 B11 B12:", np.round(mean[[1, 2, 3, 7, 11, 12]], 3))
    print("  std  refl B02 B03 B04 B08 B11 B12:", np.round(std[[1, 2, 3, 7, 11, 12]], 3))
    print("  roughness (10 m) B02 B03 B04 B08:", np.round(rough, 3))
    print(
        f"  VV {vv.mean():.1f}±{vv.std():.1f} dB, VH {vh.mean():.1f}±{vh.std():.1f} dB; corr(VV,NIR) {np.corrcoef(vv, nir)[0, 1]:.2f} corr(VH,NIR) {np.corrcoef(vh, nir)[0, 1]:.2f}"
    )
    vvr = float(np.abs(s1[0][:, 1:] - s1[0][:, :-1])[pairs].mean() / (s1[0][m].std() + 1e-9))
    print(f"  VV roughness {vvr:.3f}")


stats(s2r, s1r, clear_r, "real SEN12MS-CR patch (ROIs1868 p30, clear pixels by s2cloudless)")
panels = [("real", s2r, s1r)]
for realism, label in ((None, "as the generator draws it"), (REALISM, "reworked by REALISM")):
    cube = simulated_cube(1, size=240, realism=realism)
    t = int(np.argmin(cube.cloud.mean(("y", "x")).values))
    clear_s = ~cube.cloud.values[t]
    stats(
        cube.s2.values[t].astype(np.float32),
        cube.s1.values[t],
        clear_s,
        f"simulated seed 1, clearest date {t}, {label}",
    )
    panels.append((label, cube.s2.values[t].astype(np.float32), cube.s1.values[t]))

if len(sys.argv) > 1:  # a picture: true colour (fixed 0-0.25 reflectance) over VV (-25..0 dB)
    n = 240
    gap = np.full((n, 8, 3), 255, dtype=np.uint8)
    rows = []
    for kind in ("rgb", "vv"):
        row = []
        for _, s2, s1 in panels:
            if kind == "rgb":
                rgb = np.moveaxis(s2[[3, 2, 1], :n, :n] / 1e4 / 0.25, 0, -1)
            else:
                rgb = np.repeat(((s1[0, :n, :n] + 25.0) / 25.0)[..., None], 3, axis=-1)
            row += [np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8), gap]
        rows.append(np.concatenate(row[:-1], axis=1))
    sep = np.full((8, rows[0].shape[1], 3), 255, dtype=np.uint8)
    Image.fromarray(np.concatenate([rows[0], sep, rows[1]], axis=0)).save(sys.argv[1])
    print(f"wrote {sys.argv[1]}: real | generator | reworked; true colour above, VV below")

#!/usr/bin/env python3
"""Cloud and shadow masks of each route scored on the demo region's true labels.

    python benchmarks/bench_masks.py [SIZE]

Builds the demo region's L1C and L2A cubes (``clearcube.catalogs.demo``, SIZE px, default 1024,
all 9 dates) with the simulation's true labels (``truth_cloud``: 0 clear, 1 thick, 2 thin,
3 cirrus, 4 shadow) and prints, per route, the recall of each class (share of its pixels
masked) and the false-alarm rate (share of clear pixels masked). Routes: s2cloudless alone,
s2cloudless with projected shadows (the L1C route) with the classifier at 10, 20 and 40 m
(``MaskConfig.coarsen`` 1, 2, 4), and SCL (the L2A route).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pystac

from clearcube.bands import EARTH_SEARCH_ASSETS, L2A_MISSING, S2_BANDS
from clearcube.catalogs.demo import DEMO_BBOX
from clearcube.catalogs.demo.generate import ensure_demo_catalog
from clearcube.pipeline.cube_load import load_cube
from clearcube.pipeline.masking import MaskConfig, mask_clouds

CLASSES = {1: "thick", 2: "thin", 3: "cirrus", 4: "shadow"}


def items(root: Path, collection: str) -> list[pystac.Item]:
    doc = json.loads((root / collection / "items.json").read_text())
    feats = [f for f in doc["features"] if f["properties"]["s2:sequence"] == "0"]
    return [pystac.Item.from_dict(f) for f in feats]


def score(
    name: str, cloud: np.ndarray, truth: np.ndarray, valid: np.ndarray, seconds: float
) -> None:
    cells = [
        f"{CLASSES[c]} {cloud[valid & (truth == c)].mean():.3f}"
        for c in CLASSES
        if (valid & (truth == c)).any()
    ]
    clear = cloud[valid & (truth == 0)].mean()
    print(
        f"{name:28s} recall: {', '.join(cells)}; false alarms on clear: {clear:.3f} ({seconds:.1f} s)"
    )


def main(size: int = 1024) -> None:
    root = ensure_demo_catalog(size=size) if size != 1024 else ensure_demo_catalog()
    print(f"demo region {size} px, catalog {root}")
    for level, collection in (("L1C", "sentinel-2-l1c"), ("L2A", "sentinel-2-l2a")):
        bands = [b for b in S2_BANDS if not (level == "L2A" and b in L2A_MISSING)]
        extra = {"truth": "truth_cloud", **({"scl": "scl"} if level == "L2A" else {})}
        cube = load_cube(
            items(root, collection), None, bbox=DEMO_BBOX,
            s2_assets={b: EARTH_SEARCH_ASSETS[b] for b in bands}, extra_assets=extra,
        ).compute()  # fmt: skip
        truth = cube["truth"].values
        valid = (cube["s2"] > 0).all("band").values
        print(f"{level}: {cube.sizes['time']} dates, {int(valid.sum())} valid px; true classes "
              + ", ".join(f"{CLASSES[c]} {(truth[valid] == c).mean():.3f}" for c in CLASSES))  # fmt: skip
        routes = (
            [("s2cloudless", "s2cloudless", MaskConfig(shadows=False)),
             ("s2cloudless + shadows", "s2cloudless", MaskConfig(coarsen=1)),
             ("s2cloudless + shadows, 20 m", "s2cloudless", MaskConfig(coarsen=2)),
             ("s2cloudless + shadows, 40 m", "s2cloudless", MaskConfig(coarsen=4))]
            if level == "L1C" else [("scl", "scl", MaskConfig())]
        )  # fmt: skip
        for name, method, cfg in routes:
            start = time.perf_counter()
            cloud = mask_clouds(cube, method=method, cfg=cfg).values  # type: ignore[arg-type]
            score(f"{level} {name}", cloud, truth, valid, time.perf_counter() - start)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))

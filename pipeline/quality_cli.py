"""``clearcube seams``: the seam score of a composite COG, per band and overall.

    clearcube seams --cog out/demo/composite.tif --tile 256 --overlap 32

The tile plan is rebuilt from the COG's grid and the run's ``--tile``/``--overlap`` (the
defaults are ``clearcube run``'s), and :func:`clearcube.pipeline.seams.seam_score` compares the
jumps across the plan's seam lines with the jumps elsewhere. Values are read as reflectance
(the COG's band scale applied) with nodata as NaN. A seamless mosaic scores about 1; the issue's
target on the demo output is <= 1.1.

``overall`` scores the bands observed at 10 m (B02, B03, B04, B08). The 20 m and 60 m bands are
upsampled to the 10 m grid by nearest neighbour when the cube is built, so inside each 2 × 2 or
6 × 6 block neighbouring pixels are equal and the "median jump elsewhere" is set by the block
edges, not by the image: their ratios measure where the block grid falls relative to the seams.
They are still printed, marked, for completeness.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from clearcube.bands import S2_RESOLUTION
from clearcube.errors import BadInputError
from clearcube.pipeline.seams import seam_score
from clearcube.pipeline.tiles import plan_tiles


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``seams``."""
    p = subparsers.add_parser(
        "seams",
        help="seam score of a composite COG (jumps across tile seams / jumps elsewhere)",
        description="Score how visible the tile seams of a composite are; ~1 is seamless.",
    )
    p.add_argument("--cog", type=Path, required=True, help="the composite COG of a run")
    p.add_argument("--tile", type=int, default=256, help="the run's tile size (256)")
    p.add_argument("--overlap", type=int, default=32, help="the run's tile overlap (32)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=seams_command)


def cog_seam_scores(path: Path, *, tile: int, overlap: int) -> dict[str, float]:
    """``{band name: score, ..., "overall": score}`` for the COG at ``path``.

    Raises:
        BadInputError: ``path`` is not a readable raster, or the tile settings are invalid.
    """
    import rasterio  # local for CLI start-up (GDAL bindings)

    if not 0 <= overlap < tile:
        raise BadInputError(f"--overlap {overlap} must be in [0, --tile {tile})")
    try:
        with rasterio.open(path) as src:
            if src.driver != "GTiff" or src.crs is None:
                raise BadInputError(
                    f"{path} is a {src.driver} image without a map grid, not a composite; "
                    "pass the run's composite.tif"
                )
            data = src.read(masked=True).astype(np.float64)
            scales = np.asarray(src.scales, dtype=np.float64)
            names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
    except rasterio.errors.RasterioIOError as exc:
        raise BadInputError(
            f"cannot read {path} as a raster ({exc}); pass a composite COG"
        ) from exc
    image = data.filled(np.nan) * scales[:, None, None]
    plan = plan_tiles(image.shape[1], image.shape[2], tile=tile, overlap=overlap)
    scores = {name: seam_score(image[i], plan) for i, name in enumerate(names)}
    native = [i for i, name in enumerate(names) if S2_RESOLUTION.get(name, 10) == 10]
    scores["overall"] = seam_score(image[native], plan)
    return scores


def seams_command(args: argparse.Namespace) -> int:
    """``clearcube seams``."""
    scores = cog_seam_scores(args.cog, tile=args.tile, overlap=args.overlap)
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in scores.items()}, indent=2))
        return 0

    for name, value in scores.items():
        coarse = S2_RESOLUTION.get(name, 10) != 10
        note = f"  ({S2_RESOLUTION[name]} m band upsampled: not in overall)" if coarse else ""
        print(f"{name:<8} {value:.3f}{note}")
    return 0

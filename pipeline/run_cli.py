"""``clearcube run`` and ``clearcube demo``: the whole pipeline from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from clearcube.catalogs.cli import add_query_arguments
from clearcube.pipeline.cube_cli import add_read_arguments

#: The demo's defaults: fast enough for 2 CPU cores in a few minutes, the whole demo region,
#: with K = 2 samples so it writes the uncertainty product (tiles with nothing to generate
#: cost nothing either way).
DEMO_STEPS = 10
DEMO_SAMPLES = 2
DEMO_OUT = Path("out/demo")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` and ``demo``."""
    run = subparsers.add_parser(
        "run",
        help="make a cloud-free composite of a bbox and period",
        description="Search, build the cube, mask clouds, run SeqTIS on every tile, write COGs.",
    )
    add_query_arguments(run)
    run.add_argument("--out", type=Path, required=True, help="output folder (a rerun resumes)")
    add_read_arguments(run)
    _model_flags(run, steps=50, samples=1)
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(func=run_command)

    demo = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on the embedded demo region",
        description="Generate (once) and serve the demo catalog, then run the pipeline on it.",
    )
    demo.add_argument("--out", type=Path, default=DEMO_OUT, help=f"output folder ({DEMO_OUT})")
    _model_flags(demo, steps=DEMO_STEPS, samples=DEMO_SAMPLES)
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.set_defaults(func=demo_command)


def _model_flags(p: argparse.ArgumentParser, *, steps: int, samples: int) -> None:
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local)")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: bundled demo)")
    p.add_argument(
        "--sampler", choices=("ddim", "ddpm", "consistency", "pdmsr"), default="ddim",
        help="ddim/ddpm: the diffusion checkpoint; consistency (1 network call) or pdmsr "
        "(--steps calls): the consistency student (default checkpoint: the bundled demo-cm.pt)",
    )  # fmt: skip
    p.add_argument(
        "--steps", type=int, default=None,
        help=f"reverse steps of ddim/ddpm ({steps}); network calls of pdmsr (2)",
    )  # fmt: skip
    p.add_argument(
        "--ladder", type=_ladder, default=None, metavar="S1,S2,...",
        help="pdmsr's noise levels, descending (e.g. 80,2,0.5); default: the student's",
    )  # fmt: skip
    p.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), default="auto",
        help="the network call: bf16 autocast (1.75x faster on a CPU with native bf16, same "
        "fill quality on the held-out set) or fp32; auto (default): bf16 where the worker's "
        "device runs it natively",
    )  # fmt: skip
    p.add_argument(
        "--batch", type=int, default=0, metavar="N",
        help="tile-samples per network call (default 0: from the GPU's free memory, 1 on CPU); "
        "the output does not depend on it",
    )  # fmt: skip
    p.set_defaults(diffusion_steps=steps)
    p.add_argument(
        "--samples", type=int, default=samples,
        help=f"K, samples per tile ({samples}; >= 2 writes the uncertainty COG)",
    )  # fmt: skip
    p.add_argument(
        "--dates", type=int, default=3, help="L, the most dates a tile fuses (3), nearest first"
    )
    p.add_argument("--target", default=None, help="composite date (default: mid-period)")
    p.add_argument(
        "--mask",
        choices=("s2cloudless", "scl", "asset"),
        default="s2cloudless",
        help="cloud masking: s2cloudless (L1C), scl (L2A classes), asset (--mask-asset)",
    )
    p.add_argument(
        "--mask-asset", default=None, metavar="KEY", help="STAC asset key of a per-pixel mask"
    )
    p.add_argument(
        "--mask-values", nargs="+", type=int, default=[1], metavar="V",
        help="values of --mask-asset that mean cloud (1)",
    )  # fmt: skip
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--keep-scratch", action="store_true",
        help="keep the mosaic store's per-tile scratch (~1.3x the products) after the run",
    )  # fmt: skip


def run_command(args: argparse.Namespace) -> int:
    """``clearcube run``."""
    return _run(
        args,
        bbox=args.bbox,
        start=args.start,
        end=args.end,
        stac_url=args.stac_url,
        profile=args.profile,
        collections=args.collections,
        max_cloud=args.max_cloud,
        with_s1=not args.no_s1,
        requester_pays=args.requester_pays,
        skip_bad_assets=args.skip_bad_assets,
    )


def demo_command(args: argparse.Namespace) -> int:
    """``clearcube demo``: the demo region with the bundled checkpoint."""
    # Local for CLI start-up: the demo package pulls rasterio, scipy and the scene simulation.
    from clearcube.catalogs.demo import DEMO_BBOX, DEMO_END, DEMO_START

    return _run(args, bbox=DEMO_BBOX, start=DEMO_START, end=DEMO_END)


def _run(args: argparse.Namespace, **where: Any) -> int:
    # Local for CLI start-up: distributed, and composite's torch, xarray, zarr and odc-stac.
    import distributed  # noqa: F401  (sets its loggers to INFO on import; quiet them below)

    from clearcube.deploy.malloc import stream_large_blocks
    from clearcube.pipeline import composite

    # This process streams the region (the model runs in the workers): keep its heap flat
    # (large blocks mapped afresh, two arenas; deploy/malloc.py).
    stream_large_blocks()
    if args.verbose < 2:  # the cluster's start-up chatter hides the progress bars
        logging.getLogger("distributed").setLevel(logging.WARNING)

    with _Bars() as bars:
        result = composite(
            out_dir=args.out,
            checkpoint=args.checkpoint,
            sampler=args.sampler,
            steps=args.steps if args.steps is not None else _default_steps(args),
            ladder=args.ladder,
            precision=args.precision,
            batch=args.batch,
            tile=args.tile,
            overlap=args.overlap,
            client=args.scheduler,
            progress=bars.update,
            samples=args.samples,
            dates=args.dates,
            target=args.target,
            mask=args.mask,
            mask_asset=args.mask_asset,
            mask_values=args.mask_values,
            seed=args.seed,
            keep_scratch=args.keep_scratch,
            **where,
        )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    tiles = result.tiles
    print(f"composite    {result.cog_path}")
    if result.uncertainty_path:
        print(f"uncertainty  {result.uncertainty_path}")
    if result.provenance_path:
        print(f"provenance   {result.provenance_path}")
    print(f"quicklook    {result.quicklook_path}")
    print(f"stac item    {result.stac_item_path}")
    print(f"candidates   {', '.join(result.dates)} (each tile fuses up to {args.dates})")
    overall = result.provenance.get("overall")
    if overall:
        per_tile = result.provenance.get("generated_per_tile", {})
        worst = max(per_tile.values(), default=0.0)
        print(
            f"pixels       {100 * overall['observed']:.1f} % observed, "
            f"{100 * overall['fused']:.1f} % fused from other dates, "
            f"{100 * overall['generated']:.1f} % generated (worst tile {100 * worst:.1f} %)"
        )
    print(
        f"tiles        {tiles['total']} ({tiles['computed']} computed, {tiles['resumed']} resumed, "
        f"{tiles['without_clear']} without a clear pixel)"
    )
    print("timings      " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    print(f"disk         {result.disk_bytes / 1e6:.1f} MB in {result.out_dir}")
    return 0


class _Bars:
    """One tqdm bar per stage, on stderr, closed when the stage changes."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.stage = ""

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            if self.bar is not None:
                self.bar.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{stage:<12}", file=sys.stderr, leave=True)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()


def _default_steps(args: argparse.Namespace) -> int | None:
    """The command's reverse steps for ddim/ddpm; None lets the options pick pdmsr's calls."""
    return int(args.diffusion_steps) if args.sampler in ("ddim", "ddpm") else None


def _ladder(text: str) -> tuple[float, ...]:
    """``--ladder 80,2,0.5`` as floats (argparse turns the ValueError into a usage error)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of numbers; pass e.g. 80,2,0.5"
        ) from None

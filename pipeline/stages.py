"""The stages :func:`clearcube.pipeline.composite` strings together, one function each.

Each stage takes the frozen :class:`~clearcube.pipeline.composite.CompositeOptions` and paths,
and leaves its result on disk where the next stage (or a rerun) finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clearcube import CUBE_MASK_ATTR, __version__
from clearcube.bands import DN_PER_REFLECTANCE, L2A_MISSING, S1_BANDS, S2_BANDS
from clearcube.errors import BadInputError
from clearcube.fingerprint import fingerprint
from clearcube.pipeline.dates import MAX_CANDIDATES, DateSelection, middle_date, select_dates
from clearcube.pipeline.inference import TileJob, TileOutcome, infer_tile
from clearcube.pipeline.mosaic import MosaicSpec, MosaicStore, open_mosaic
from clearcube.pipeline.provenance import PROVENANCE, ProvenanceView, fractions
from clearcube.pipeline.scheduling import run_bounded
from clearcube.pipeline.tiles import plan_tiles

if TYPE_CHECKING:
    import xarray as xr

    from clearcube.catalogs.records import SceneSet
    from clearcube.pipeline.composite import CompositeOptions

log = logging.getLogger(__name__)
Report = Callable[[str, int, int], None]

#: Cube variable holding the provided mask asset (``mask="asset"``).
ASSET_VARIABLE = "cloud_asset"


def check_checkpoint(opts: CompositeOptions) -> None:
    """Refuse a checkpoint trained on other bands before any data is fetched."""
    from clearcube.model.checkpoint import load_checkpoint

    load_checkpoint(opts.checkpoint, expect_s2_bands=cube_bands(opts), expect_s1_bands=S1_BANDS)


def cube_bands(opts: CompositeOptions) -> tuple[str, ...]:
    """The Sentinel-2 bands the cube will hold: all 13 for L1C, no B10 for L2A (the SCL route)."""
    return tuple(b for b in S2_BANDS if not (opts.level == "L2A" and b in L2A_MISSING))


def check_gpu_slots(client: Any) -> int:
    """How many tiles the cluster can run at once; refuse a cluster with no ``GPU`` slot at all."""
    from clearcube.deploy.local import gpu_slots

    slots = gpu_slots(client)
    if slots == 0:
        raise BadInputError(
            "no worker of the Dask cluster advertises a GPU slot, so no tile could run; start "
            "workers with `dask worker ADDRESS --resources GPU=1` (see deploy/README.md)"
        )
    return slots


def search_scenes(opts: CompositeOptions) -> SceneSet:
    """Find the Sentinel-2 scenes of the period and their Sentinel-1 pairs."""
    from clearcube.catalogs.search import search

    return search(
        bbox=opts.bbox, start=opts.start, end=opts.end, max_cloud=opts.max_cloud,
        profile=opts.profile, stac_url=opts.stac_url, collections=opts.collections,
        level=opts.level,  # type: ignore[arg-type]
        with_s1=opts.with_s1,
    )  # fmt: skip


def warn_missing_sar(scenes: SceneSet, opts: CompositeOptions) -> None:
    """Say (a warning) when Sentinel-2 dates have no Sentinel-1 pair: the model sees less.

    A date without a pair takes the mean SAR of the dates that have one; with no SAR at all the
    SAR-conditioned model fills from the optical dates alone, which it was not trained for.
    """
    missing = sum(1 for s in scenes.s2 if scenes.pairs.get(s.id) is None)
    if not missing:
        return
    if missing == len(scenes.s2):
        why = "--no-s1 was given" if not opts.with_s1 else "none within 3 days of any date"
        log.warning(
            "no Sentinel-2 date has Sentinel-1 (%s); cloudy pixels are filled without SAR, "
            "less faithfully (--profile planetary-computer has calibrated SAR)",
            why,
        )
    else:
        log.warning(
            "%d of %d Sentinel-2 dates have no Sentinel-1 within 3 days; they take the other "
            "dates' mean SAR",
            missing,
            len(scenes.s2),
        )


def check_mask_asset(scenes: SceneSet, opts: CompositeOptions) -> None:
    """Refuse ``mask="asset"`` when a Sentinel-2 item lacks the mask asset (before any write)."""
    if opts.mask != "asset":
        return
    items = scenes.s2_items()
    lacking = sorted(item.id for item in items if opts.mask_asset not in item.assets)
    if lacking:
        more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
        offered = sorted(set.intersection(*(set(item.assets) for item in items)))
        raise BadInputError(
            f"mask asset {opts.mask_asset!r} is missing on {len(lacking)} of {len(items)} "
            f"Sentinel-2 items ({', '.join(lacking[:3])}{more}); pass --mask-asset with one of {offered} "
            "or use --mask s2cloudless"
        )


def build_cube(scenes: SceneSet, opts: CompositeOptions, path: Path, report: Report) -> Path:
    """Load the scenes onto one grid and write (or resume) the Zarr cube at ``path``."""
    from clearcube.pipeline.cube import write_cube
    from clearcube.pipeline.cube_load import load_scenes

    assets = dict(scenes.profile.assets) if scenes.profile is not None else {}
    cube = load_scenes(
        scenes,
        bbox=opts.bbox,
        bands=cube_bands(opts),
        resolution=opts.resolution,
        extra_assets=_mask_assets(opts, assets),
        requester_pays=opts.requester_pays,
        skip_bad_assets=opts.skip_bad_assets,
    )
    return write_cube(cube, path, progress=lambda done, total: report("cube", done, total))


def _mask_assets(opts: CompositeOptions, assets: Mapping[str, str]) -> dict[str, str] | None:
    """The per-date rasters the masking route reads (loaded nearest: they are classes)."""
    if opts.mask == "scl":
        return {"scl": assets.get("SCL", "scl")}
    if opts.mask == "asset":
        return {ASSET_VARIABLE: str(opts.mask_asset)}
    return None


def mask_key(opts: CompositeOptions) -> str:
    """What a stored mask was made with; a date is masked again when it differs."""
    if opts.mask == "s2cloudless":
        return "s2cloudless+shadows"  # clouds, then their shadows (masking.add_shadows)
    if opts.mask != "asset":
        return opts.mask
    return f"asset:{opts.mask_asset}:{','.join(map(str, sorted(opts.mask_values)))}"


def choose_dates(
    path: Path, opts: CompositeOptions, clear: np.ndarray | None = None
) -> DateSelection:
    """The candidate dates the tiles choose from: the nearest usable dates around the target.

    At most ``max(opts.dates, MAX_CANDIDATES)``; each tile fuses up to ``opts.dates`` of them.
    Without measured ``clear`` fractions the catalog's ``eo:cloud_cover`` ranks the dates, so
    only the candidates need the (slow) cloud detector.
    """
    from clearcube.pipeline.cube import open_cube

    cube = open_cube(path)
    if cube.sizes["time"] == 0 or cube.sizes["y"] == 0 or cube.sizes["x"] == 0:
        raise BadInputError(f"the cube at {path} is empty; widen the bbox or the dates")
    if clear is None:
        cover = np.asarray(cube["cloud_cover"].values, dtype=float)
        clear = np.where(np.isfinite(cover), 1.0 - cover / 100.0, 0.5)
    target = opts.target or str(middle_date(opts.start, opts.end))  # the period's middle (issue 4)
    length = max(opts.dates, MAX_CANDIDATES)
    selection = select_dates(cube["time"].values, clear, length=length, target=target)
    log.info(
        "candidate dates (each tile fuses up to %d): %s",
        opts.dates,
        ", ".join(str(d)[:10] for d in selection.dates),
    )
    return selection


def mask_and_choose(path: Path, opts: CompositeOptions, report: Report) -> DateSelection:
    """Choose the dates, mask their clouds into the cube (once), and check that ground shows.

    When the chosen dates turn out to show no ground at all (the catalog's cloud cover was
    wrong), every date is masked and the choice is made again on measured fractions.
    """
    selection = choose_dates(path, opts)
    clear = mask_dates(path, selection.indices, opts, report)
    if np.any(clear[list(selection.indices)] > 0):
        return selection
    every = tuple(range(clear.size))
    clear = mask_dates(path, every, opts, report)
    if not np.any(clear > 0):
        raise BadInputError(
            f"no clear pixel in any of the {clear.size} dates between {opts.start} and {opts.end}; "
            "widen the dates (SeqTIS needs at least one clear observation somewhere)"
        )
    return choose_dates(path, opts, clear=np.nan_to_num(clear, nan=0.0))


def mask_dates(
    path: Path, indices: tuple[int, ...], opts: CompositeOptions, report: Report
) -> np.ndarray:
    """Cloud-mask the dates ``indices`` into the cube's ``cloud`` variable unless already done.

    Masks are cached per date and method in the cube (attribute :data:`CUBE_MASK_ATTR`), so a rerun,
    or another composite over the same cube, never runs the detector twice.

    Returns:
        ``(time,)`` clear fraction per date (NaN for dates not masked).
    """
    import dask.array as da
    import xarray as xr
    import zarr

    from clearcube.pipeline.cube import open_cube
    from clearcube.pipeline.masking import MaskConfig, mask_clouds, nir_reference

    group = zarr.open_group(path, mode="r+")
    cube = open_cube(path)
    masked: dict[str, list[int]] = dict(group.attrs.get(CUBE_MASK_ATTR) or {})  # type: ignore[arg-type]
    chunks = cube["s2"].data.chunksize  # (time, band, y, x) as stored
    if "cloud" not in group:
        empty = da.zeros(
            (cube.sizes["time"], cube.sizes["y"], cube.sizes["x"]),
            chunks=(1, chunks[2], chunks[3]),
            dtype=bool,
        )
        template = xr.Dataset({"cloud": (("time", "y", "x"), empty)})
        _append_variables(path, template, compute=False)
        group = zarr.open_group(path, mode="r+")
        masked = {}
    key = mask_key(opts)
    done = set(masked.get(key, []))
    todo = [i for i in indices if i not in done]
    cfg = MaskConfig(asset_variable=ASSET_VARIABLE, asset_cloud_values=opts.mask_values)
    reference = None
    if todo and opts.mask == "s2cloudless" and cfg.shadows:
        # The shadow test's per-pixel B08 median over all dates: written once into the cube
        # (window by window), then read lazily by every date's mask.
        if "nir_reference" not in group:
            ref = nir_reference(cube).chunk({"y": chunks[2], "x": chunks[3]})
            _append_variables(path, xr.Dataset({"nir_reference": (("y", "x"), ref.data)}))
            group = zarr.open_group(path, mode="r+")
        reference = open_cube(path)["nir_reference"]
    for n, i in enumerate(todo):
        report("mask", n, len(todo))
        cloud = mask_clouds(cube.isel(time=[i]), method=opts.mask, cfg=cfg, reference=reference)
        # The detector's dask chunks need not match the stored chunks (xarray refuses
        # overlapping region writes), so write along the cube's own chunk grid.
        data = da.asarray(cloud.data).rechunk(group["cloud"].chunks)  # type: ignore[union-attr]
        region = xr.Dataset({"cloud": (("time", "y", "x"), data)})
        window = {"time": slice(i, i + 1), "y": slice(None), "x": slice(None)}
        region.to_zarr(path, region=window, zarr_format=3, consolidated=False)
        done.add(i)
        # The date's stored mask is now this route's; no other route may claim it.
        masked = {k: [d for d in v if d != i] for k, v in masked.items()}
        masked[key] = sorted(done)
        group.attrs[CUBE_MASK_ATTR] = masked  # after the data: a crash recomputes this date
    report("mask", len(todo), len(todo))
    cube = open_cube(path)
    clear = np.full(cube.sizes["time"], np.nan)
    have = sorted(done)  # only these dates have masks; reading the others would be wasted I/O
    dates = cube.isel(time=have)
    valid = (dates["s2"] > 0).all("band")
    clear[have] = ((~dates["cloud"]) & valid).mean(("y", "x")).values.astype(float)
    return clear


def _append_variables(path: Path, ds: xr.Dataset, **kwargs: Any) -> None:
    """Add ``ds``'s variables to the cube store, keeping the store's root attributes.

    xarray's ``to_zarr(mode="a")`` replaces the root attributes with ``ds.attrs``, which would
    drop the cube's fingerprint, completeness flag and mask record.
    """
    import zarr

    attrs = dict(zarr.open_group(path, mode="r").attrs)
    ds.to_zarr(path, mode="a", zarr_format=3, consolidated=False, **kwargs)
    zarr.open_group(path, mode="r+").attrs.update(attrs)


def mosaic_spec(path: Path, opts: CompositeOptions, selection: DateSelection) -> MosaicSpec:
    """The output store's layout for a cube and run options."""
    from clearcube.pipeline.cube import open_cube

    cube = open_cube(path)
    height, width = cube.sizes["y"], cube.sizes["x"]
    crs = str(cube.attrs.get("crs"))
    from affine import Affine

    # The cube stores the GDAL geotransform (c, a, b, f, d, e); the mosaic wants rasterio's order.
    transform = tuple(Affine.from_gdal(*(float(v) for v in cube.attrs["transform"])))[:6]
    products: tuple[str, ...] = ("composite", "provenance")
    if opts.samples > 1:
        products += ("uncertainty",)
    run = {
        "dates": [str(d) for d in selection.dates],
        "per_tile_dates": opts.dates,  # stores from before dates were chosen per tile: no resume
        # the order tiles pick candidates in depends on the target: another target, another run
        "preference": [int(i) for i in selection.preference],
        "checkpoint": Path(opts.checkpoint).name,
        "values": "reflectance",  # stores from before DN were divided by 10000 must not resume
        **{k: getattr(opts, k) for k in ("sampler", "steps", "eta", "samples", "seed")},
        "mask": mask_key(opts),
    }
    return MosaicSpec(
        plan=plan_tiles(height, width, tile=opts.tile, overlap=opts.overlap),
        bands=tuple(str(b) for b in cube["band"].values),
        fingerprint=fingerprint(run),
        products=products,
        layers=(("provenance", len(PROVENANCE)),),
        crs=crs,
        transform=transform,  # type: ignore[arg-type]
    )


def run_inference(
    client: Any,
    cube: Path,
    selection: DateSelection,
    opts: CompositeOptions,
    store_path: Path,
    report: Report,
    *,
    max_in_flight: int | None = None,
) -> tuple[MosaicStore, dict[str, int]]:
    """Run one GPU-pinned task per pending tile; return the store and the tile counts."""
    from clearcube.pipeline.composite import model_spec

    store = open_mosaic(store_path, mosaic_spec(cube, opts, selection))
    plan = store.spec.plan
    pending = store.pending()
    total = len(plan)
    counts = {"total": total, "computed": 0, "resumed": total - len(pending), "without_clear": 0}
    spec = model_spec(opts)
    candidates = selection.preference or selection.indices
    jobs = (
        TileJob(str(cube), store, tile, candidates, spec, max_dates=opts.dates) for tile in pending
    )
    report("inference", counts["resumed"], total)

    def done(job: TileJob, outcome: TileOutcome) -> None:
        counts["computed"] += 1
        if outcome.clear_fraction == 0.0:
            counts["without_clear"] += 1
            log.warning(
                "tile %s has no clear observation on any candidate date; filled from SAR by "
                "the model",
                job.tile.index,
            )
        log.debug(
            "tile %s fused dates %s, generated %.1f %%",
            job.tile.index,
            outcome.dates,
            100 * outcome.generated_fraction,
        )
        report("inference", counts["resumed"] + counts["computed"], total)

    slots = check_gpu_slots(client)
    stats = run_bounded(
        client, infer_tile, jobs, on_result=done,
        max_in_flight=max_in_flight or 4 * slots, resources={"GPU": 1},
    )  # fmt: skip
    # Counted from the store, not from this run's tasks: a resumed run reports every tile.
    recorded = store.clear_fractions()
    if np.isfinite(recorded).all():
        counts["without_clear"] = int(np.sum(recorded == 0.0))
    log.info(
        "inference: %d tiles in %.1f s on %d workers",
        stats.completed,
        stats.seconds,
        len(stats.workers),
    )
    return store, counts


def blend(client: Any, store: MosaicStore, report: Report) -> None:
    """Assemble the output windows from the pre-weighted tiles, one task per window."""
    if store.complete:
        return
    windows = list(store.output_windows())
    futures = client.map(_assemble, [store] * len(windows), windows, pure=False)
    for i, future in enumerate(futures):
        future.result()
        report("blend", i + 1, len(windows))
    store.mark_complete()


def _assemble(store: MosaicStore, window: tuple[slice, slice]) -> None:
    store.assemble_window(*window)


def write_products(
    store: MosaicStore,
    cube: Path,
    selection: DateSelection,
    opts: CompositeOptions,
    out: Path,
    report: Report,
) -> dict[str, Any]:
    """The COGs, the quicklook and the STAC item of a finished mosaic."""
    from clearcube.model.checkpoint import checkpoint_sha256
    from clearcube.pipeline.cog import write_mosaic_cogs
    from clearcube.pipeline.cube import open_cube
    from clearcube.pipeline.quicklook import cloudiest_date, write_quicklook
    from clearcube.pipeline.stac_item import build_stac_item, write_stac_item

    tags = {
        "clearcube_version": __version__,
        "checkpoint_sha256": checkpoint_sha256(opts.checkpoint),
        "sampler": opts.sampler,
        "steps": str(opts.steps),
        "samples": str(opts.samples),
        "dates": ",".join(str(d)[:10] for d in selection.dates),
        "target_date": str(selection.target)[:10],
    }
    paths: dict[str, Any] = dict(
        write_mosaic_cogs(
            store, out, tags=tags, progress=lambda p, done, total: report(f"cog {p}", done, total)
        )
    )
    ds = open_cube(cube)
    chosen = list(selection.indices)
    known = ~ds["cloud"].isel(time=chosen).values.astype(bool)
    # the cloudiest candidate that still shows some ground: what the composite replaced
    before = ds["s2"].isel(time=chosen[cloudiest_date(known, min_clear=0.05)]).astype("float32")
    before = before / DN_PER_REFLECTANCE  # the store holds reflectance, the cube DN
    classes = ProvenanceView(store.array("provenance"), store.array("composite"))
    paths["quicklook"] = write_quicklook(
        before.values, store.array("composite"), list(store.spec.bands), out / "quicklook.png",
        provenance=classes,
    )  # fmt: skip
    paths["provenance_report"] = provenance_report(classes, store)
    plan = store.spec.plan
    item = build_stac_item(
        item_id=f"clearcube-{out.name or 'composite'}",
        crs=store.spec.crs,
        transform=store.spec.transform,
        shape=(plan.height, plan.width),
        start=opts.start,
        end=opts.end,
        target=selection.target,
        assets={
            k: v
            for k, v in paths.items()
            if k in ("composite", "uncertainty", "provenance", "quicklook")
        },
        band_names=list(store.spec.bands),
        properties={f"clearcube:{k}": v for k, v in tags.items()},
    )
    paths["item"] = write_stac_item(item, out / "item.json")
    paths["stac_item"] = item
    return paths


def provenance_report(classes: ProvenanceView, store: MosaicStore) -> dict[str, Any]:
    """Shares of observed / fused / generated pixels, overall and per tile (``"y0,x0"``).

    The overall shares come from the output windows (each pixel once); a tile's share of
    generated pixels from its whole window (overlaps included).
    """
    counts = dict.fromkeys(PROVENANCE, 0.0)
    for rows, cols in store.output_windows():
        window = classes[0, rows, cols][0]
        valid = float(np.sum(np.isfinite(window)))
        for name, share in fractions(window).items():
            counts[name] += share * valid
    pixels = max(sum(counts.values()), 1.0)
    overall = {name: round(v / pixels, 4) for name, v in counts.items()}
    per_tile = {
        f"{tile.y0},{tile.x0}": round(fractions(classes[0, tile.window[0], tile.window[1]][0])[
            "generated"], 4)
        for tile in store.spec.plan
    }  # fmt: skip
    log.info(
        "provenance: %.1f %% observed, %.1f %% fused, %.1f %% generated",
        *(100 * overall[n] for n in PROVENANCE),
    )
    return {"overall": overall, "generated_per_tile": per_tile}


def product_paths(products: Mapping[str, Any]) -> dict[str, str]:
    """The string paths of a :func:`write_products` result (for logs and JSON)."""
    return {k: str(v) for k, v in products.items() if isinstance(v, Path)}

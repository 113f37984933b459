"""Load Sentinel-2 and Sentinel-1 scenes onto one grid as a lazy (dask-backed) cube.

``load_cube`` reads as a short story: check the inputs, fix the target grid, group the
Sentinel-2 scenes into dates by solar day, pair each date with a Sentinel-1 acquisition, then let
odc-stac build the lazy arrays (through our retrying reader, :mod:`clearcube.pipeline.retry`).

Choices, and why:

- **Grid.** One odc-geo ``GeoBox``: the items' UTM zone (the most common among the S2 items),
  ``resolution`` metres, the bbox transformed to that CRS and its corners rounded OUTWARD to
  multiples of the resolution, so the grid is the same for every run over the same bbox and pixel
  edges sit on the Sentinel-2 10/20/60 m grids (which are multiples of 60 m).
- **Upsampling 20/60 m bands: nearest.** s2cloudless expects DN-scaled top-of-atmosphere
  reflectance of all its bands sampled on one 10 m grid, the way Sentinel Hub delivers them
  (nearest by default); nearest keeps every value a real measurement, never blends a pixel with
  the 0 nodata at scene edges, and keeps categorical assets (SCL) valid. Sentinel-1 is continuous
  and on another CRS, so it is reprojected bilinearly.
- **Chunks.** ``(time 1, band all, y chunk, x chunk)`` with ``chunk = 256`` anchored at the grid
  origin, the same origin as the tile plan: one 256×256 tile plus a 32 px halo touches at most
  2×2 chunks per date, all bands come in one read, and choosing a subset of dates (SeqTIS) reads
  only those dates. That is the *stored* chunk (``clearcube_chunk``). The lazy cube reads
  Sentinel-2 and the extras in windows of ``READ_CHUNKS`` × ``READ_CHUNKS`` chunks (1024 px, one
  store region): 16× fewer read tasks, same values (nearest on one grid; the demo cube and its
  COGs byte-identical, cube stage 21.6 → 7.8 s). Sentinel-1 is read in the same windows: its
  bilinear reprojection runs through :mod:`clearcube.pipeline.exact_warp`, whose values do not
  depend on the window (GDAL's default warp moved them by up to 0.21 dB).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import dask.array as da
import numpy as np
import odc.stac
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from clearcube.bands import EARTH_SEARCH_ASSETS, S1_BANDS, S2_BANDS
from clearcube.catalogs.radiometry import S1Units, s1_conversion, s2_conversion
from clearcube.catalogs.records import (
    DEFAULT_PAIR_TOLERANCE,
    SceneSet,
    nearest_in_time,
    s1_acquisitions,
)
from clearcube.catalogs.search import BBox, validate_bbox
from clearcube.errors import BadInputError
from clearcube.fingerprint import fingerprint
from clearcube.pipeline.cube_grid import default_crs, target_geobox
from clearcube.pipeline.retry import (
    AssetRef,
    RetryPolicy,
    asset_index,
    find_bad_assets,
    retrying_driver,
)

log = logging.getLogger(__name__)

#: Sentinel-2 read windows span this many storage chunks per side (the store's region size).
READ_CHUNKS = 4
#: Default y/x chunk edge in pixels (one tile).
DEFAULT_CHUNK = 256


def check_assets(items: Sequence[pystac.Item], assets: Mapping[str, str], kind: str) -> None:
    """Raise BadInputError naming the bands and items when an item lacks a requested asset."""
    missing: dict[str, list[str]] = {}
    for item in items:
        for band, key in assets.items():
            if key not in item.assets:
                missing.setdefault(band, []).append(item.id)
    if missing:
        bands = ", ".join(f"{b} (asset {assets[b]!r})" for b in missing)
        ids = sorted({i for v in missing.values() for i in v})
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        raise BadInputError(
            f"{kind} items lack bands {bands}: {shown}; choose a collection/profile whose "
            "items carry these assets or request fewer bands"
        )


def solar_day(when: datetime, lon: float) -> str:
    """Local solar date (ISO) of ``when`` at longitude ``lon``: 15° of longitude per hour."""
    moment = when if when.tzinfo else when.replace(tzinfo=UTC)
    return (moment.astimezone(UTC) + timedelta(hours=lon / 15.0)).date().isoformat()


def group_by_solar_day(items: Sequence[pystac.Item], lon: float) -> list[list[pystac.Item]]:
    """Items grouped into dates by solar day; dates in order, items by time then id."""
    groups: dict[str, list[pystac.Item]] = {}
    for item in sorted(items, key=lambda i: (_when(i), i.id)):
        groups.setdefault(solar_day(_when(item), lon), []).append(item)
    return [groups[day] for day in sorted(groups)]


def _when(item: pystac.Item) -> datetime:
    if item.datetime is None:
        raise BadInputError(f"item {item.id!r} has no datetime; it cannot be placed in time")
    return item.datetime if item.datetime.tzinfo else item.datetime.replace(tzinfo=UTC)


def _naive64(when: datetime) -> np.datetime64:
    return np.datetime64(when.astimezone(UTC).replace(tzinfo=None), "ns")


def pair_dates(
    s2_groups: Sequence[Sequence[pystac.Item]],
    s1_groups: Sequence[Sequence[pystac.Item]],
    s1_pairing: Mapping[str, str | None] | None,
) -> list[int | None]:
    """For each S2 date, the index of its S1 date (or None).

    With ``s1_pairing`` (S2 item id -> S1 item id) the first paired item of a date decides; without
    it, the S1 date nearest in time within the search's tolerance (``DEFAULT_PAIR_TOLERANCE``).
    """
    s1_index = {item.id: k for k, group in enumerate(s1_groups) for item in group}
    out: list[int | None] = []
    for group in s2_groups:
        if s1_pairing is not None:
            ids = [s1_pairing.get(item.id) for item in group]
            chosen = next((i for i in ids if i is not None), None)
            if chosen is not None and chosen not in s1_index:
                raise BadInputError(
                    f"S1 item {chosen!r} paired with S2 date of {group[0].id!r} is not among "
                    "the S1 items given; pass it in s1_items or fix the pairing"
                )
            out.append(None if chosen is None else s1_index[chosen])
            continue
        s1_times = [_when(g[0]) for g in s1_groups]
        out.append(nearest_in_time(_when(group[0]), s1_times, DEFAULT_PAIR_TOLERANCE))
    return out


def _stack(ds: xr.Dataset, keys: Sequence[str], names: Sequence[str], dim: str) -> xr.DataArray:
    # object dtype: Zarr v3 stores it as variable-length strings (fixed-width has no v3 spec)
    arr = ds[list(keys)].to_dataarray(dim=dim).assign_coords({dim: np.array(names, dtype=object)})
    return arr.transpose("time", dim, "y", "x")


def load_cube(
    s2_items: Sequence[pystac.Item],
    s1_items: Sequence[pystac.Item] | None = None,
    *,
    bbox: Sequence[float],
    s2_assets: Mapping[str, str],
    s1_assets: Mapping[str, str] | None = None,
    resolution: float = 10,
    crs: str | None = None,
    chunks: int = DEFAULT_CHUNK,
    s1_pairing: Mapping[str, str | None] | None = None,
    extra_assets: Mapping[str, str] | None = None,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, immutable default)
    skip_bad_assets: bool = False,
    s1_units: Mapping[str, S1Units] | None = None,
    requester_pays: bool = False,
) -> xr.Dataset:
    """Build the lazy S1/S2 cube of ``s2_items`` (and ``s1_items``) over ``bbox``.

    Args:
        s2_items: Sentinel-2 STAC items; items of one solar day become one date.
        s1_items: Sentinel-1 items, or None for no SAR (``s1`` is then all NaN).
        bbox: W, S, E, N in WGS84 degrees.
        s2_assets: canonical band -> asset key (e.g. ``EARTH_SEARCH_ASSETS`` restricted to the
            wanted bands); bands come out in :data:`S2_BANDS` order.
        s1_assets: canonical polarisation (``VV``/``VH``) -> asset key; default ``vv``/``vh``.
        resolution: pixel size in metres.
        crs: output CRS; default the UTM zone of the S2 items.
        chunks: y/x chunk edge in pixels, anchored at the grid origin.
        s1_pairing: S2 item id -> S1 item id (or None); default nearest within 3 days.
        extra_assets: output variable -> asset key of other per-date rasters (``{"scl": "scl"}``),
            loaded as ``(time, y, x)`` uint8 with nearest resampling.
        retry: attempts and backoff for every chunk read.
        skip_bad_assets: probe every asset first and drop dates (S2) or pairings (S1) whose
            assets cannot be read, with a warning, instead of failing the build later.
        s1_units: collection -> units of its SAR values, for items whose assets do not say
            (the catalog profile's :attr:`~clearcube.catalogs.profiles.CatalogProfile.s1_units`).
        requester_pays: read ``s3://`` assets that the item offers no public https href for,
            billing the transfer to the caller's AWS account (``AWS_REQUEST_PAYER=requester``;
            needs AWS credentials). Without it such an asset is refused before any read.

    Values are brought to clearcube's convention per item as they are read
    (:mod:`clearcube.catalogs.radiometry`): Sentinel-2 without the baseline-04.00 offset,
    Sentinel-1 in dB.

    Returns:
        Dataset with ``s2`` (time, band, y, x) uint16 DN (nodata 0), ``s1`` (time, s1_band, y, x)
        float32 dB (NaN nodata) aligned to the S2 dates, optional extras, coords ``time``,
        ``cloud_cover``, ``s1_time``, ``y``/``x``, ``spatial_ref``; attrs ``crs``, ``transform``
        (GDAL order) and ``clearcube_fingerprint`` (identifies the inputs, for resuming writes).

    Raises:
        BadInputError: bad bbox or resolution, no S2 items, items lacking requested bands, every
            date unreadable with ``skip_bad_assets``, an item whose Sentinel-2 offset or
            Sentinel-1 units its metadata cannot establish (or that are uncalibrated amplitude).
    """
    box = validate_bbox(bbox)
    if not s2_items:
        raise BadInputError(
            f"no Sentinel-2 items for bbox {list(box)}; widen the dates or raise --max-cloud"
        )
    bands = [b for b in S2_BANDS if b in s2_assets]
    unknown = sorted(set(s2_assets) - set(S2_BANDS))
    if unknown or not bands:
        raise BadInputError(
            f"unknown Sentinel-2 bands {unknown or list(s2_assets)}; use {S2_BANDS}"
        )
    s1_assets = dict(s1_assets or {p: p.lower() for p in S1_BANDS})
    extra = dict(extra_assets or {})
    s1_list = list(s1_items or [])
    s2_items, s1_list = resolve_hrefs(s2_items), resolve_hrefs(s1_list)
    check_assets(s2_items, {**{b: s2_assets[b] for b in bands}, **extra}, "Sentinel-2")
    check_assets(s1_list, s1_assets, "Sentinel-1")
    wanted = [*(s2_assets[b] for b in bands), *extra.values()]
    s2_items = public_hrefs(s2_items, wanted, requester_pays)
    s1_list = public_hrefs(s1_list, list(s1_assets.values()), requester_pays)
    gdal_env = {"AWS_REQUEST_PAYER": "requester"} if requester_pays else {}
    # Decide every item's conversion now: an item clearcube cannot interpret is refused
    # before anything is read or written.
    s2_keys = [s2_assets[b] for b in bands]
    s2_index = asset_index(s2_items, s2_keys, s2_conversion)
    s1_index = asset_index(
        s1_list, list(s1_assets.values()), lambda i, k: s1_conversion(i, k, s1_units)
    )

    gbox = target_geobox(box, crs or default_crs(s2_items, box), resolution)
    lon = (box[0] + box[2]) / 2
    s2_groups = group_by_solar_day(s2_items, lon)
    s1_groups = s1_acquisitions(s1_list)
    pairs = pair_dates(s2_groups, s1_groups, s1_pairing)
    if skip_bad_assets:
        s2_groups, pairs = _drop_bad(
            s2_groups, pairs, s1_groups, [*(s2_assets[b] for b in bands), *extra.values()],
            list(s1_assets.values()), gbox, retry, gdal_env,
        )  # fmt: skip

    # Every asset is read in READ_CHUNKS-fold larger windows (4 × 4 storage chunks: one read task
    # per store region instead of 16): nearest resampling on the output grid, and Sentinel-1's
    # exact bilinear warp (exact_warp), give the same values whatever the window (issue 13). The
    # lazy arrays keep those windows as their dask chunks, so a region is written in one Zarr call
    # per date and variable (Sentinel-1 split into 256 px dask chunks took 16 calls per window:
    # cube 16x 1.30 -> 1.07 s, benchmarks/RESULTS.md, session 12).
    read = chunks * READ_CHUNKS
    s2 = _odc_load(
        s2_groups, s2_keys, gbox, read, retry, "nearest", "uint16", 0, s2_index, gdal_env
    )
    ds = xr.Dataset({"s2": _stack(s2, s2_keys, bands, "band").chunk({"band": -1})})
    for name, key in extra.items():
        ex = _odc_load(s2_groups, [key], gbox, read, retry, "nearest", "uint8", 0, None, gdal_env)
        ds[name] = ex[key].drop_vars("spatial_ref", errors="ignore")
    ds["s1"] = _s1_aligned(
        s1_groups, pairs, s1_assets, gbox, read, retry, ds["s2"], s1_index, gdal_env
    )

    times = [_naive64(_when(g[0])) for g in s2_groups]
    s1_times = [np.datetime64("NaT", "ns") if k is None else _naive64(_when(s1_groups[k][0])) for k in pairs]  # fmt: skip
    ds = ds.assign_coords(
        time=np.array(times, dtype="datetime64[ns]"),
        cloud_cover=("time", [_cloud_cover(g) for g in s2_groups]),
        sun_azimuth=("time", [_sun(g, "view:sun_azimuth") for g in s2_groups]),
        sun_elevation=("time", [_sun(g, "view:sun_elevation") for g in s2_groups]),
        s1_time=("time", np.array(s1_times, dtype="datetime64[ns]")),
    )
    ds["s2"].attrs.update(nodata=0, units="DN (reflectance x 10000, baseline-04.00 offset removed)")
    ds["s1"].attrs.update(units="dB")
    ds.attrs.update(
        crs=str(gbox.crs),
        transform=list(gbox.transform.to_gdal()),
        resolution=float(resolution),
        clearcube_chunk=int(chunks),
        clearcube_fingerprint=_source_fingerprint(
            s2_groups,
            s1_groups,
            pairs,
            box,
            s2_assets,
            s1_assets,
            extra,
            gbox,
            chunks,
            {**s2_index, **s1_index},
        ),
    )
    return ds


def load_scenes(
    scenes: SceneSet,
    *,
    bbox: Sequence[float],
    bands: Sequence[str],
    resolution: float = 10,
    extra_assets: Mapping[str, str] | None = None,
    skip_bad_assets: bool = False,
    chunks: int = DEFAULT_CHUNK,
    requester_pays: bool = False,
) -> xr.Dataset:
    """The cube of a search result: what ``clearcube cube`` and ``clearcube run`` both build.

    Every slice of each paired Sentinel-1 acquisition is loaded (and mosaicked), with the asset
    names and SAR units of the scenes' catalog profile.
    """
    profile = scenes.profile
    assets = profile.assets if profile is not None else EARTH_SEARCH_ASSETS
    return load_cube(
        scenes.s2_items(),
        scenes.s1_items_paired(),
        bbox=bbox,
        s2_assets={b: assets.get(b, b) for b in bands},
        s1_assets={p: assets.get(p, p.lower()) for p in S1_BANDS},
        resolution=resolution,
        chunks=chunks,
        s1_pairing=dict(scenes.pairs),
        extra_assets=extra_assets,
        skip_bad_assets=skip_bad_assets,
        s1_units=profile.s1_units if profile is not None else None,
        requester_pays=requester_pays,
    )


def public_hrefs(
    items: Sequence[pystac.Item], keys: Sequence[str], requester_pays: bool
) -> list[pystac.Item]:
    """``items`` with each wanted ``s3://`` asset read from its public https alternate.

    Earth Search serves some assets only from requester-pays S3 buckets (its ``sentinel-2-l1c``
    JP2s): reading them bills the reader's AWS account, so they need ``requester_pays``
    and AWS credentials; without both the build is refused before any read.

    Raises:
        BadInputError: an ``s3://`` asset with no https alternate and no ``requester_pays``, or
            ``requester_pays`` without AWS credentials.
    """
    out = []
    needs_s3: list[tuple[str, str, str]] = []
    for item in items:
        clone = item
        for key in keys:
            asset = item.assets.get(key)
            if asset is None or not asset.href.startswith("s3://"):
                continue
            alternate = (asset.extra_fields.get("alternate") or {}).get("https") or {}
            if str(alternate.get("href", "")).startswith("https://"):
                clone = clone.clone() if clone is item else clone
                clone.assets[key].href = alternate["href"]
            else:
                needs_s3.append((item.id, key, asset.href))
        out.append(clone)
    if needs_s3 and not requester_pays:
        item_id, key, href = needs_s3[0]
        raise BadInputError(
            f"asset {key!r} of item {item_id!r} (and {len(needs_s3) - 1} more) is only on S3 "
            f"({href}), in a requester-pays bucket: pass --requester-pays with AWS credentials "
            "(you pay the transfer), or use the L2A route's public https COGs (run: --mask scl; "
            "cube: --level L2A) on Earth Search or Planetary Computer"
        )
    if needs_s3 and not _aws_credentials():
        log.warning(
            "--requester-pays: no AWS credentials found (environment, AWS_PROFILE, "
            "~/.aws/credentials, or botocore's chain); reads will fail unless the machine has a "
            "role that provides them"
        )
    return out


def _aws_credentials() -> bool:
    """Whether AWS credentials are findable: botocore's chain (roles too) when installed."""
    try:
        import botocore.session

        return botocore.session.get_session().get_credentials() is not None
    except ImportError:
        pass
    except Exception:  # a broken config: let GDAL's own lookup decide
        return True
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return True
    home = os.path.expanduser("~/.aws/credentials")
    return bool(os.environ.get("AWS_PROFILE")) or os.path.isfile(
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE", home)
    )


def resolve_hrefs(items: Sequence[pystac.Item]) -> list[pystac.Item]:
    """Copies of ``items`` whose asset hrefs are absolute, read as the catalog meant them.

    pystac joins a root-relative href (``/data/x.tif``) onto an http self link, which turns a local
    file served through a (since stopped) local STAC API into a dead URL. An href that is an
    absolute filesystem path is kept as that path; others are resolved against the self link.
    """
    out = []
    for item in items:
        clone = item.clone()
        for asset in clone.assets.values():
            href = asset.href
            if not (os.path.isabs(href) and "://" not in href):
                href = asset.get_absolute_href() or href
            asset.href = href
        clone.remove_links("self")
        out.append(clone)
    return out


def _cloud_cover(group: Sequence[pystac.Item]) -> float:
    values = [float(c) for i in group if (c := i.properties.get("eo:cloud_cover")) is not None]
    return float(np.mean(values)) if values else float("nan")


def _sun(group: Sequence[pystac.Item], key: str) -> float:
    """The date's sun angle in degrees, or NaN.

    ``view:sun_*``, else Planetary Computer's ``s2:mean_solar_*`` (elevation = 90 - zenith); the
    circular mean of the date's items.
    """
    values = []
    for item in group:
        props = item.properties
        if props.get(key) is not None:
            values.append(float(props[key]))
        elif key == "view:sun_elevation" and props.get("s2:mean_solar_zenith") is not None:
            values.append(90.0 - float(props["s2:mean_solar_zenith"]))
        elif key == "view:sun_azimuth" and props.get("s2:mean_solar_azimuth") is not None:
            values.append(float(props["s2:mean_solar_azimuth"]))
    if not values:
        return float("nan")
    if key == "view:sun_elevation":
        return float(np.mean(values))
    rad = np.radians(values)
    return float(np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())) % 360.0)


def _odc_load(
    groups: Sequence[Sequence[pystac.Item]],
    keys: Sequence[str],
    gbox: GeoBox,
    chunks: int,
    retry: RetryPolicy,
    resampling: str,
    dtype: str,
    nodata: float,
    index: Mapping[str, AssetRef] | None = None,
    gdal_env: Mapping[str, str] | None = None,
) -> xr.Dataset:
    items = [item for group in groups for item in group]
    if index is None:
        index = asset_index(items, keys)
    date_of = {item.id: k for k, group in enumerate(groups) for item in group}
    ds: xr.Dataset = odc.stac.load(
        items,
        bands=list(keys),
        geobox=gbox,
        groupby=lambda item, parsed, idx: date_of[item.id],
        chunks={"time": 1, "y": chunks, "x": chunks},
        resampling=resampling,
        dtype=dtype,
        nodata=nodata,
        driver=retrying_driver(retry, index, gdal_env),
    )
    return ds


def _s1_aligned(
    s1_groups: Sequence[Sequence[pystac.Item]],
    pairs: Sequence[int | None],
    s1_assets: Mapping[str, str],
    gbox: GeoBox,
    chunks: int,
    retry: RetryPolicy,
    like: xr.DataArray,
    index: Mapping[str, AssetRef],
    gdal_env: Mapping[str, str],
) -> xr.DataArray:
    """S1 on the S2 time axis: date k holds S1 date ``pairs[k]``, NaN when unpaired."""
    names = [p for p in S1_BANDS if p in s1_assets]
    shape = (like.sizes["time"], len(names), like.sizes["y"], like.sizes["x"])
    chunk = (1, len(names), chunks, chunks)
    if not s1_groups or all(p is None for p in pairs):
        data = da.full(shape, np.nan, dtype="float32", chunks=chunk)
        return xr.DataArray(
            data,
            dims=("time", "s1_band", "y", "x"),
            coords={"s1_band": np.array(names, dtype=object)},
        )
    keys = [s1_assets[p] for p in names]
    s1 = _odc_load(
        s1_groups, keys, gbox, chunks, retry, "bilinear", "float32", float("nan"), index, gdal_env
    )
    stacked = _stack(s1, keys, names, "s1_band").chunk({"s1_band": -1})
    order = np.array([0 if p is None else p for p in pairs])
    has_pair = xr.DataArray(np.array([p is not None for p in pairs]), dims="time")
    aligned = stacked.isel(time=order).drop_vars(["time", "spatial_ref"], errors="ignore")
    return aligned.where(has_pair).astype("float32")


def _drop_bad(
    s2_groups: list[list[pystac.Item]],
    pairs: list[int | None],
    s1_groups: list[list[pystac.Item]],
    s2_keys: Sequence[str],
    s1_keys: Sequence[str],
    gbox: GeoBox,
    retry: RetryPolicy,
    gdal_env: Mapping[str, str],
) -> tuple[list[list[pystac.Item]], list[int | None]]:
    """Drop S2 dates with an unreadable asset and unpair S1 dates with one (warning each)."""
    items = [i for g in s2_groups for i in g]
    bad = find_bad_assets(items, s2_keys, gbox, retry, gdal_env)
    s1_bad = find_bad_assets([i for g in s1_groups for i in g], s1_keys, gbox, retry, gdal_env)
    for reason in (*bad.values(), *s1_bad.values()):
        log.warning("skipping a bad asset: %s", reason)
    keep = [k for k, g in enumerate(s2_groups) if not any(i.id in bad for i in g)]
    if not keep:
        raise BadInputError(
            "every Sentinel-2 date has an unreadable asset; check the catalog's files or widen the dates"
        )
    bad_s1 = {k for k, g in enumerate(s1_groups) if any(i.id in s1_bad for i in g)}
    new_pairs = [None if pairs[k] in bad_s1 else pairs[k] for k in keep]
    return [s2_groups[k] for k in keep], new_pairs


def _source_fingerprint(
    s2_groups: Sequence[Sequence[pystac.Item]],
    s1_groups: Sequence[Sequence[pystac.Item]],
    pairs: Sequence[int | None],
    bbox: BBox,
    s2_assets: Mapping[str, str],
    s1_assets: Mapping[str, str],
    extra: Mapping[str, str],
    gbox: GeoBox,
    chunks: int,
    index: Mapping[str, AssetRef],
) -> str:
    conversions = sorted(
        f"{r.item_id}/{r.key}:{r.conversion.kind}{r.conversion.offset:+d}" for r in index.values()
    )
    doc = {
        "conversions": conversions,
        "s2": [[i.id for i in g] for g in s2_groups],
        "s1": [[i.id for i in g] for g in s1_groups],
        "pairs": list(pairs),
        "bbox": list(bbox),
        "assets": [dict(s2_assets), dict(s1_assets), dict(extra)],
        "grid": [str(gbox.crs), list(gbox.transform.to_gdal()), list(gbox.shape.yx)],
        "chunks": chunks,
    }
    return fingerprint(doc)


def warn_missing_sar(scenes: SceneSet, *, with_s1: bool) -> None:
    """Say (a warning) when Sentinel-2 dates have no Sentinel-1 pair: the model sees less.

    A date without a pair takes the mean SAR of the dates that have one; with no SAR at all the
    model fills from the optical dates alone (the demo model is trained for that too: SAR
    dropout), less faithfully where SAR would show what the clouds hide.
    """
    missing = sum(1 for s in scenes.s2 if scenes.pairs.get(s.id) is None)
    if not missing:
        return
    if missing == len(scenes.s2):
        why = "--no-s1 was given" if not with_s1 else "none within 3 days of any date"
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

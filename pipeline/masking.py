"""Cloud masking: s2cloudless on L1C bands, the L2A scene classification (SCL), or a provided mask.

Every route returns a boolean ``cloud`` array (True = cloud or cloud shadow, do not trust the pixel).

s2cloudless (Zupanc et al., Sentinel Hub) is a per-pixel LightGBM classifier of top-of-atmosphere
reflectance in 10 bands (B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12); its weights ship in
the wheel and run offline. Its mask post-processing averages the probability over a disk of radius
``average_over`` pixels, thresholds it, then dilates by a disk of radius ``dilation_size`` pixels.
Both radii are in pixels of the array given, here the cube's 10 m grid. We keep the paper's defaults
(threshold 0.4, average over 4, dilation 2) in 10 m pixels, i.e. a 40 m smoothing and a 20 m safety
margin. The detector's authors suggest 22/11 at 10 m for a smoother, more conservative mask; on the
demo region (256 px, 9 dates) that raised false alarms on clear pixels from 2.8 % to 9.5 % with
thick-cloud recall above 0.99 either way, so 22/11 stays an option of :class:`MaskConfig`.
s2cloudless needs B10, which L2A products lack: on L2A cubes use ``method="scl"``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr

from clearcube.bands import DN_PER_REFLECTANCE, S2_BANDS, SCL_CLOUD_CLASSES
from clearcube.errors import BadInputError

MaskMethod = Literal["s2cloudless", "scl", "asset"]

#: Cube variable holding a provided mask asset (``method="asset"``).
ASSET_VARIABLE = "cloud_asset"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskConfig:
    """Parameters of the three masking routes."""

    threshold: float = 0.4
    """s2cloudless: cloud where the disk-averaged probability exceeds this (paper: 0.4)."""
    average_over: int = 4
    """s2cloudless: radius in pixels of the averaging disk (paper: 4; 0 disables)."""
    dilation_size: int = 2
    """s2cloudless: radius in pixels of the dilation disk (paper: 2; 0 disables)."""
    dn_scale: float = 1.0 / DN_PER_REFLECTANCE
    """s2cloudless: multiply the cube's values by this to get reflectance (1 / 10000 for DN)."""
    coarsen: int = 2
    """s2cloudless: classify means of coarsen x coarsen blocks (2 = 20 m, 4x fewer pixels). With
    dask, chunk y and x in multiples of it so that the result does not depend on the chunking.
    Default 20 m, the native resolution of most of the classifier's bands: on the demo region's
    true labels recall and false alarms equal the 10 m run's to ±0.001 at 3.6x less time
    (benchmarks/bench_masks.py, RESULTS "s2cloudless at 10, 20 and 40 m"); 1 = every 10 m pixel."""
    scl_classes: tuple[int, ...] = field(default_factory=lambda: tuple(sorted(SCL_CLOUD_CLASSES)))
    """SCL route: the classes that count as cloud (shadow 3, medium 8, high 9, cirrus 10)."""
    asset_variable: str = ASSET_VARIABLE
    """Asset route: the cube variable (time, y, x) holding the provided mask."""
    asset_cloud_values: tuple[int, ...] = (1,)
    """Asset route: the values of that mask that mean cloud."""
    shadows: bool = True
    """s2cloudless route: add cloud shadows, projected from the clouds along the date's sun
    (``sun_azimuth``/``sun_elevation`` of the cube) and darker in B08 than the pixel's median."""
    cloud_heights_m: tuple[float, float] = (400.0, 3000.0)
    """s2cloudless route: the range of cloud heights whose shadows are searched for."""
    shadow_darkness: float = 0.7
    """s2cloudless route: a shadow pixel's B08 is below this fraction of its median over dates."""
    min_sun_elevation: float = 15.0
    """s2cloudless route: below this sun elevation (degrees) shadows are not searched for (they
    are then over 11 km long for a 3 km cloud: too long to place, too slow to search; logged)."""


@dataclass(frozen=True)
class MaskRequest:
    """Which masking route a run asks for: what the mask stage takes and records."""

    method: MaskMethod = "s2cloudless"
    """``s2cloudless`` (L1C, with cloud shadows), ``scl`` (L2A scene classes) or ``asset``."""
    asset: str | None = None
    """``asset``: the Sentinel-2 items' STAC asset key of a per-pixel class mask (e.g. the demo
    catalog's ``truth_cloud``: 0 clear, 1 thick, 2 thin cloud, 3 cirrus, 4 shadow)."""
    values: tuple[int, ...] = (1,)
    """``asset``: the values of that mask that mean cloud (or shadow)."""

    def check(self) -> None:
        """Refuse an inconsistent request (one line naming the flag to fix).

        Raises:
            BadInputError: unknown method, an asset without ``asset``, or no values.
        """
        if self.method not in ("s2cloudless", "scl", "asset"):
            raise BadInputError(
                f"unknown mask {self.method!r}; pass --mask s2cloudless, scl or asset"
            )
        if self.method == "asset" and not self.asset:
            raise BadInputError(
                "--mask asset needs the items' mask asset key; pass --mask-asset KEY "
                "(e.g. truth_cloud)"
            )
        if self.method != "asset" and self.asset:
            raise BadInputError(
                f"--mask-asset {self.asset} is only used with --mask asset; pass --mask asset"
            )
        if not self.values:
            raise BadInputError(
                "--mask-values is empty; pass the mask values that mean cloud, e.g. 1"
            )

    @property
    def key(self) -> str:
        """What a stored mask was made with; a date is masked again when it differs."""
        if self.method == "s2cloudless":
            return "s2cloudless+shadows"  # clouds, then their shadows (add_shadows)
        if self.method != "asset":
            return self.method
        return f"asset:{self.asset}:{','.join(map(str, sorted(self.values)))}"

    def cube_assets(self, scl_asset: str = "scl") -> dict[str, str] | None:
        """The per-date rasters the route reads into the cube (loaded nearest: they are classes).

        Args:
            scl_asset: the catalog's asset key of the L2A scene classification.
        """
        if self.method == "scl":
            return {"scl": scl_asset}
        if self.method == "asset":
            return {ASSET_VARIABLE: str(self.asset)}
        return None

    def config(self) -> MaskConfig:
        """The :class:`MaskConfig` of this route (defaults otherwise)."""
        return MaskConfig(asset_variable=ASSET_VARIABLE, asset_cloud_values=self.values)

    def check_items(self, items: Sequence[Any]) -> None:
        """Refuse the asset route when a Sentinel-2 item lacks the mask asset (before any write).

        Raises:
            BadInputError: naming the items without it and the assets they do share.
        """
        if self.method != "asset":
            return
        lacking = sorted(item.id for item in items if self.asset not in item.assets)
        if lacking:
            more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
            offered = sorted(set.intersection(*(set(item.assets) for item in items)))
            raise BadInputError(
                f"mask asset {self.asset!r} is missing on {len(lacking)} of {len(items)} "
                f"Sentinel-2 items ({', '.join(lacking[:3])}{more}); pass --mask-asset with one "
                f"of {offered} or use --mask s2cloudless"
            )


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    # Local: s2cloudless takes ~0.6 s to import (LightGBM, sentinelhub); only this method needs it.
    from s2cloudless import S2PixelCloudDetector  # a core dependency; loads its model lazily

    return S2PixelCloudDetector(all_bands=True)


def s2cloudless_probability(
    s2_dn: np.ndarray, *, dn_scale: float = 1.0 / DN_PER_REFLECTANCE, coarsen: int = 1
) -> np.ndarray:
    """Per-pixel s2cloudless cloud probability.

    Args:
        s2_dn: ``(T, 13, H, W)`` Sentinel-2 L1C values in :data:`S2_BANDS` order (B01..B12 with
            B8A and B10); 0 or NaN in every band marks a pixel without data.
        dn_scale: factor to reflectance (1e-4 for DN, 1.0 for data already in reflectance).
        coarsen: classify means of ``coarsen`` x ``coarsen`` pixel blocks (2: 20 m from 10 m,
            4x cheaper; the classifier costs ~20 us per pixel on one core) and spread the result
            back to every pixel of the block.

    Returns:
        ``(T, H, W)`` float32 in [0, 1], NaN where there is no data.
    """
    if s2_dn.ndim != 4 or s2_dn.shape[1] != len(S2_BANDS):
        raise BadInputError(
            f"s2cloudless needs (time, 13 bands, y, x) L1C data, got shape {s2_dn.shape}; "
            "load all 13 bands (B10 included) from an L1C collection"
        )
    return _probability_last_axis(np.moveaxis(s2_dn, 1, -1), dn_scale, coarsen)


def _probability_last_axis(bands_last: np.ndarray, dn_scale: float, coarsen: int = 1) -> np.ndarray:
    """s2cloudless on ``(..., H, W, 13)`` data; returns ``(..., H, W)``."""
    lead = bands_last.shape[:-1]
    height, width = lead[-2:]
    stack = bands_last.reshape(-1, height, width, len(S2_BANDS)).astype(np.float32)
    stack *= np.float32(dn_scale)
    empty = np.all((stack == 0) | np.isnan(stack), axis=-1)
    stack = np.nan_to_num(stack)
    if coarsen > 1:  # classify block means, then give each pixel its block's probability
        pad_y, pad_x = -height % coarsen, -width % coarsen
        stack = np.pad(stack, ((0, 0), (0, pad_y), (0, pad_x), (0, 0)), mode="edge")
        n, h, w, c = stack.shape
        stack = stack.reshape(n, h // coarsen, coarsen, w // coarsen, coarsen, c).mean(axis=(2, 4))
    probability = _detector().get_cloud_probability_maps(stack, num_threads=1)
    if coarsen > 1:
        probability = probability.repeat(coarsen, axis=1).repeat(coarsen, axis=2)
        probability = probability[:, :height, :width]
    probability[empty] = np.nan
    result: np.ndarray = probability.reshape(lead).astype(np.float32)
    return result


def cloud_from_probability(
    probability: np.ndarray,
    *,
    threshold: float = 0.4,
    average_over: int = 4,
    dilation_size: int = 2,
) -> np.ndarray:
    """s2cloudless post-processing: disk average, threshold, disk dilation (radii in pixels).

    Args:
        probability: ``(T, H, W)`` probabilities; NaN (no data) counts as clear.
        threshold: probability above which a pixel is cloud (after averaging).
        average_over: radius of the averaging disk; 0 skips the averaging.
        dilation_size: radius of the dilation disk; 0 skips the dilation.

    Returns:
        ``(T, H, W)`` bool, True = cloud.
    """
    import cv2  # local, like s2cloudless (see _detector); cv2 comes with it
    from s2cloudless.utils import cv2_disk

    # The steps of S2PixelCloudDetector.get_mask_from_prob, which fails without averaging.
    smooth = np.nan_to_num(probability.astype(np.float32), nan=0.0)
    if average_over > 0:
        disk = cv2_disk(average_over).astype(np.float32)
        kernel = disk / disk.sum()
        smooth = np.stack(
            [cv2.filter2D(p, -1, kernel, borderType=cv2.BORDER_REFLECT) for p in smooth]
        )
    cloud = smooth > threshold
    if dilation_size > 0:
        cloud = np.stack([_dilate(c, dilation_size) for c in cloud])
    return cloud.astype(bool)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``(h, w)`` bool mask grown by a disk of ``radius`` pixels (s2cloudless's disk)."""
    import cv2  # local, like s2cloudless (see _detector)
    from s2cloudless.utils import cv2_disk

    return cv2.dilate(mask.astype(np.uint8), cv2_disk(radius)).astype(bool)


def cloud_mask_s2cloudless(
    s2_dn: np.ndarray,
    *,
    threshold: float = 0.4,
    average_over: int = 4,
    dilation_size: int = 2,
    dn_scale: float = 1.0 / DN_PER_REFLECTANCE,
) -> np.ndarray:
    """s2cloudless cloud mask of ``(T, 13, H, W)`` L1C data: ``(T, H, W)`` bool, True = cloud."""
    probability = s2cloudless_probability(s2_dn, dn_scale=dn_scale)
    return cloud_from_probability(
        probability, threshold=threshold, average_over=average_over, dilation_size=dilation_size
    )


def cloud_mask_scl(scl: np.ndarray, classes: tuple[int, ...] | None = None) -> np.ndarray:
    """Cloud from Sen2Cor's scene classification: True where SCL is shadow, cloud or cirrus."""
    wanted = tuple(sorted(SCL_CLOUD_CLASSES)) if classes is None else classes
    return cloud_mask_from_asset(scl, wanted)


def cloud_mask_from_asset(values: np.ndarray, cloud_values: tuple[int, ...]) -> np.ndarray:
    """Cloud from a provided mask: True where ``values`` is one of ``cloud_values``."""
    return np.isin(values, np.asarray(cloud_values))


def mask_clouds(
    cube: xr.Dataset,
    *,
    method: MaskMethod = "s2cloudless",
    cfg: MaskConfig | None = None,
    reference: xr.DataArray | None = None,
) -> xr.DataArray:
    """The ``cloud`` mask ``(time, y, x)`` of a cube, lazily and chunk by chunk when it is dask-backed.

    Args:
        cube: a dataset with ``s2`` ``(time, band, y, x)`` (canonical band names, uint16 DN) and,
            for the other routes, ``scl`` or ``cfg.asset_variable`` ``(time, y, x)``.
        method: ``"s2cloudless"`` (needs the 13 L1C bands), ``"scl"`` (L2A) or ``"asset"``.
        cfg: parameters; :class:`MaskConfig` defaults when None.
        reference: the shadow test's per-pixel B08 reference (:func:`nir_reference` of the
            whole cube); computed from ``cube`` when None (pass it when masking one date).
    """
    cfg = cfg or MaskConfig()
    if method == "s2cloudless":
        cloud = _mask_s2cloudless_xr(cube, cfg)
        if cfg.shadows:
            cloud = add_shadows(cube, cloud, cfg, reference)
    elif method in ("scl", "asset"):
        name = "scl" if method == "scl" else cfg.asset_variable
        if name not in cube:
            raise BadInputError(
                f"cube has no '{name}' variable for method='{method}'; "
                + ("load the L2A 'scl' asset" if method == "scl" else "load the mask asset")
                + " or use method='s2cloudless'"
            )
        values = cfg.scl_classes if method == "scl" else cfg.asset_cloud_values
        cloud = xr.apply_ufunc(
            cloud_mask_from_asset,
            cube[name],
            kwargs={"cloud_values": tuple(values)},
            dask="parallelized",
            output_dtypes=[bool],
        ).transpose("time", "y", "x")
    else:
        raise BadInputError(f"unknown masking method {method!r}; use s2cloudless, scl or asset")
    cloud.name = "cloud"
    cloud.attrs = {"method": method, "description": "True = cloud or cloud shadow"}
    return cloud


def _mask_s2cloudless_xr(cube: xr.Dataset, cfg: MaskConfig) -> xr.DataArray:
    s2 = cube["s2"]
    missing = [b for b in S2_BANDS if b not in s2["band"].values]
    if missing:
        raise BadInputError(
            f"s2cloudless needs all 13 L1C bands; the cube lacks {', '.join(missing)}: "
            "build it from sentinel-2-l1c, or mask with method='scl' on L2A"
        )
    s2 = s2.sel(band=list(S2_BANDS))
    if s2.chunks is not None:
        s2 = s2.chunk({"band": -1})
    probability = xr.apply_ufunc(
        _probability_last_axis,
        s2,
        input_core_dims=[["band"]],
        kwargs={"dn_scale": cfg.dn_scale, "coarsen": cfg.coarsen},
        dask="parallelized",
        output_dtypes=[np.float32],
    ).transpose("time", "y", "x")
    post = functools.partial(
        cloud_from_probability,
        threshold=cfg.threshold,
        average_over=cfg.average_over,
        dilation_size=cfg.dilation_size,
    )
    data = probability.data
    if probability.chunks is None:
        cloud = post(np.asarray(data))
    else:
        # A pixel's mask depends on probabilities within average_over + dilation_size of it.
        halo = cfg.average_over + cfg.dilation_size
        cloud = da.map_overlap(
            post, data, depth={0: 0, 1: halo, 2: halo}, boundary="reflect", dtype=bool
        )
    return xr.DataArray(cloud, coords=probability.coords, dims=probability.dims)


def shadow_offsets(
    sun_azimuth: float, sun_elevation: float, pixel_m: float, heights_m: tuple[float, float]
) -> list[tuple[int, int]]:
    """Pixel offsets ``(rows, cols)`` from a cloud to its shadow, for cloud heights in a range.

    The shadow lies away from the sun, ``h / tan(elevation)`` metres from the cloud on the ground
    (the view's parallax is neglected: Sentinel-2 looks within 10.3° of nadir). Rows grow
    southwards and columns eastwards; one offset per pixel of distance.
    """
    if not 0.0 < sun_elevation <= 90.0:
        return []
    per_metre = 1.0 / math.tan(math.radians(sun_elevation)) / pixel_m
    near, far = heights_m[0] * per_metre, heights_m[1] * per_metre
    away = math.radians(sun_azimuth + 180.0)
    d_row, d_col = -math.cos(away), math.sin(away)
    offsets = {
        (round(d_row * d), round(d_col * d))
        for d in np.arange(near, far + 0.5, 0.5)  # half-pixel steps: no gaps on diagonals
    }
    return sorted(offsets)


def project_shadows(cloud: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """Where the shadow of ``cloud`` ``(h, w)`` can fall: the union of its shifted copies."""
    out = np.zeros_like(cloud, dtype=bool)
    h, w = cloud.shape
    for dr, dc in offsets:
        if abs(dr) >= h or abs(dc) >= w:
            continue
        src = cloud[max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
        out[max(0, dr) : h - max(0, -dr), max(0, dc) : w - max(0, -dc)] |= src
    return out


def shadow_mask(
    cloud: np.ndarray,
    nir: np.ndarray,
    reference: np.ndarray,
    offsets: list[tuple[int, int]],
    *,
    darkness: float = 0.7,
    dilation_size: int = 1,
) -> np.ndarray:
    """Cloud shadows of one date: projected from its clouds along the sun and darker than usual.

    Args:
        cloud: ``(h, w)`` bool cloud mask of the date.
        nir: ``(h, w)`` B08 DN of the date (0 = nodata).
        reference: ``(h, w)`` a typical B08 DN of each pixel (the median over the cube's dates).
        offsets: from :func:`shadow_offsets` for the date's sun and the cloud heights.
        darkness: dark means ``nir < darkness * reference`` (a shadow keeps
            only the diffuse light, ~35 % of the direct in the demo's simulation).
        dilation_size: disk radius in pixels added around the shadows (their soft edges).

    Returns:
        ``(h, w)`` bool, True = cloud shadow (never on a cloud pixel).
    """
    possible = project_shadows(np.asarray(cloud, dtype=bool), offsets) & ~cloud & (nir > 0)
    shadow = possible & (nir < darkness * np.asarray(reference, dtype=np.float64))
    if dilation_size > 0 and shadow.any():
        shadow = _dilate(shadow, dilation_size)
    only_shadow: np.ndarray = shadow & ~cloud
    return only_shadow


def nir_reference(cube: xr.Dataset) -> xr.DataArray:
    """The typical B08 of each pixel: its median over the cube's dates that look cloud-free.

    A date counts where the pixel has data and B02 < 2000 DN (reflectance 0.2: clouds are
    bright in blue, land rarely is), so clouds do not lift the reference that shadows are
    compared with. NaN where no date qualifies.
    """
    s2 = cube["s2"]
    nir = s2.sel(band="B08").astype("float32")
    usable = (nir > 0) & (s2.sel(band="B02") < 2000)
    masked = nir.where(usable)
    if masked.chunks is not None:
        masked = masked.chunk({"time": -1})
    return masked.median("time", skipna=True)


def add_shadows(
    cube: xr.Dataset,
    cloud: xr.DataArray,
    cfg: MaskConfig,
    reference: xr.DataArray | None = None,
) -> xr.DataArray:
    """``cloud`` or-ed with each date's cloud shadows (:func:`shadow_mask`), window by window.

    Needs the cube's ``sun_azimuth``/``sun_elevation`` (per date, from the items' ``view:sun_*``);
    dates without them keep their cloud mask as it is (logged). With dask the dates are computed
    in windows with a halo as wide as the longest shadow, so any region size works.
    """
    if "sun_azimuth" not in cube.coords or "sun_elevation" not in cube.coords:
        _log.warning("the cube has no sun angles (view:sun_* of the items); shadows not masked")
        return cloud
    pixel_m = float(cube.attrs.get("resolution") or abs(float(cube["x"][1] - cube["x"][0])))
    if reference is None:
        reference = nir_reference(cube)
    ref = reference.data
    out = []
    for t in range(cloud.sizes["time"]):
        az = float(cube["sun_azimuth"].values[t])
        el = float(cube["sun_elevation"].values[t])
        clouds_t = cloud.isel(time=t).data
        nir_t = cube["s2"].isel(time=t).sel(band="B08").data
        if not (math.isfinite(az) and math.isfinite(el)):
            _log.warning("date %d has no sun angles; its shadows are not masked", t)
            out.append(clouds_t)
            continue
        if el < cfg.min_sun_elevation:
            _log.warning(
                "date %d: sun %.1f° above the horizon, below %.0f°; its shadows are not masked",
                t, el, cfg.min_sun_elevation,
            )  # fmt: skip
            out.append(clouds_t)
            continue
        offsets = shadow_offsets(az, el, pixel_m, cfg.cloud_heights_m)
        run = functools.partial(_cloud_and_shadow, offsets=offsets, darkness=cfg.shadow_darkness)
        if hasattr(clouds_t, "dask"):
            depth = 2 + max((max(abs(r), abs(c)) for r, c in offsets), default=0)
            clouds_t = clouds_t.persist()  # the halo re-reads it: do not recompute s2cloudless
            if depth >= min(clouds_t.shape):  # the halo spans the array: one window
                clouds_t = clouds_t.rechunk(-1)
            arrays = (clouds_t, da.asarray(nir_t), da.asarray(ref))
            arrays = tuple(a.rechunk(clouds_t.chunks) for a in arrays)
            if clouds_t.numblocks == (1, 1):
                out.append(da.map_blocks(run, *arrays, dtype=bool))
            else:
                out.append(da.map_overlap(run, *arrays, depth=depth, boundary="none", dtype=bool))
        else:
            out.append(run(np.asarray(clouds_t), np.asarray(nir_t), np.asarray(ref)))
    data = da.stack(out) if hasattr(out[0], "dask") else np.stack([np.asarray(o) for o in out])
    return xr.DataArray(data, coords=cloud.coords, dims=cloud.dims)


def _cloud_and_shadow(
    cloud: np.ndarray,
    nir: np.ndarray,
    reference: np.ndarray,
    *,
    offsets: list[tuple[int, int]],
    darkness: float,
) -> np.ndarray:
    ref = np.where(np.isfinite(reference), reference, np.inf)  # no reference: never dark
    masked: np.ndarray = cloud | shadow_mask(cloud, nir, ref, offsets, darkness=darkness)
    return masked

"""Raster reads that retry with exponential backoff, and name the asset when they finally fail.

odc-stac has no read retries of its own (odc-stac issue #144), and a failed read surfaces as a
bare rasterio error without the STAC item it belongs to. Its pluggable *reader driver* is the
hook: :class:`RetryingRioDriver` is odc-loader's rasterio driver whose per-source reader retries
each chunk read under a :class:`RetryPolicy` and, once the attempts are spent, raises
:class:`~clearcube.errors.AssetReadError` naming the href, the item id and the asset key. Because
the retry sits inside the reader, it runs inside every dask chunk task, on whichever worker
computes it, and only the failing chunk is re-read.

**One retry layer, with a budget.** This is the only layer that retries: every read runs with
GDAL's own HTTP retries off (``GDAL_HTTP_MAX_RETRY=0``) and with GDAL's HTTP timeouts set from the
policy (:func:`gdal_options`, the one place clearcube sets them), so a stalled server cannot hang
a read and a dead asset is not retried 10 times below our 4. A read gives up when its attempts
are spent or when the next backoff would take it past ``budget_s`` (default 60 s), and raises an
error naming the asset; transient failures are retried with doubling backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pystac
import rasterio
import rasterio.errors
from odc.geo.geobox import GeoBox
from odc.loader._rio import RioDriver
from rasterio.windows import from_bounds

from clearcube.catalogs.radiometry import NO_CONVERSION, PixelConversion
from clearcube.errors import AssetReadError, BadInputError, install_log_redaction, redact
from clearcube.pipeline.exact_warp import exact_read

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing read is retried."""

    attempts: int = 4
    """Total tries per read (1 = no retry)."""
    backoff_base: float = 0.5
    """Seconds slept after the first failure; doubled after each further one."""
    backoff_max: float = 8.0
    """Upper bound of one sleep in seconds."""
    budget_s: float = 60.0
    """Most seconds one read may take over all its attempts before its asset is named in an
    error (a retry that would end past it is not started)."""
    http_timeout_s: float = 20.0
    """GDAL's timeout of one HTTP request (``GDAL_HTTP_TIMEOUT``; connect: half of it)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise BadInputError(f"retry attempts must be >= 1, got {self.attempts}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise BadInputError("retry backoff times must be >= 0 seconds")
        if self.budget_s <= 0 or self.http_timeout_s <= 0:
            raise BadInputError("retry budget and HTTP timeout must be > 0 seconds")

    def delays(self) -> Iterator[float]:
        """Yield the sleep before each retry: ``base, 2·base, 4·base, ...`` capped at ``max``."""
        for attempt in range(self.attempts - 1):
            yield min(self.backoff_base * 2.0**attempt, self.backoff_max)


def gdal_options(policy: RetryPolicy) -> dict[str, str]:
    """GDAL's network settings for every read: no retries of its own, timeouts from ``policy``."""
    timeout = max(1, round(policy.http_timeout_s))
    return {
        "GDAL_HTTP_MAX_RETRY": "0",
        "GDAL_HTTP_TIMEOUT": str(timeout),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, timeout // 2)),
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing per COG open
    }


def read_env(policy: RetryPolicy, gdal_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every read's GDAL options: :func:`gdal_options` plus the caller's (``AWS_REQUEST_PAYER``)."""
    return {**gdal_options(policy), **dict(gdal_env or {})}


@dataclass(frozen=True)
class AssetRef:
    """Which STAC asset an href belongs to, for error messages."""

    item_id: str
    """STAC item id."""
    key: str
    """Asset key in the item (``"blue"``, ``"vv"``)."""
    conversion: PixelConversion = NO_CONVERSION
    """What the reader does to the asset's raw values (:mod:`clearcube.catalogs.radiometry`)."""


def _retryable() -> tuple[type[BaseException], ...]:
    return (rasterio.errors.RasterioError, OSError)


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    href: str,
    ref: AssetRef | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds or ``policy.attempts`` tries are spent.

    Only I/O errors (rasterio/GDAL and ``OSError``) are retried; anything else is a bug and
    propagates at once.

    Raises:
        AssetReadError: naming ``href`` (and the item and asset key when ``ref`` is given) when
            the last attempt fails.
    """
    retryable = _retryable()
    delays = policy.delays()
    start = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            return fn()
        except retryable as exc:
            delay = next(delays, None)
            spent = time.monotonic() - start
            if delay is None or spent + delay > policy.budget_s:
                error = asset_read_error(href, ref, exc, tries, spent)
                break
            log.info(
                "read of %s failed (%s); retrying in %.2f s", redact(href), redact(str(exc)), delay
            )
        sleep(delay)
    # Raised outside the ``except`` block, unchained: the reason is in the message, and a
    # GDAL exception in the chain makes distributed hand the client a bare ``Exception``
    # instead of the AssetReadError (so the CLI could not say which asset failed).
    raise error


def asset_read_error(
    href: str, ref: AssetRef | None, exc: BaseException, attempts: int, seconds: float = 0.0
) -> AssetReadError:
    """The one-line error for an asset that could not be read."""
    what = f"asset {ref.key!r} of item {ref.item_id!r}" if ref else "asset"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    remote = "://" in href and not href.startswith("file://")
    check = (
        "check the URL and the server (or the network)"
        if remote
        else "check that the file exists and is a complete GeoTIFF"
    )
    return AssetReadError(
        f"cannot read {what} at {redact(href)} after {attempts} attempt(s) in {seconds:.0f} s: "
        f"{redact(reason)}; {check}, or rerun with --skip-bad-assets to drop that date"
    )


def asset_index(
    items: Sequence[pystac.Item],
    asset_keys: Sequence[str],
    conversion: Callable[[pystac.Item, str], PixelConversion] | None = None,
) -> dict[str, AssetRef]:
    """Map each requested asset's href to its item id, asset key and value conversion."""
    index: dict[str, AssetRef] = {}
    for item in items:
        for key in asset_keys:
            asset = item.assets.get(key)
            if asset is not None:
                how = conversion(item, key) if conversion is not None else NO_CONVERSION
                index[asset.get_absolute_href() or asset.href] = AssetRef(item.id, key, how)
    return index


class _RetryingReader:
    """Wraps one odc-loader raster reader with retries, exact warps and per-item conversion.

    Every ``read`` goes through :func:`retry_call`; a read that warps with a resampling kernel
    runs through :func:`~clearcube.pipeline.exact_warp.exact_read` (values independent of the read
    window), the rest through odc-loader's reader. The pixels it returns are converted to
    clearcube's convention (``ref.conversion``) before odc-loader fuses the items of a date, so
    each item gets its own offset or units.
    """

    def __init__(
        self,
        inner: Any,
        src: Any,
        ref: AssetRef | None,
        policy: RetryPolicy,
        gdal_env: Mapping[str, str] | None = None,
    ):
        self._inner = inner
        self._src = src
        self._href: str = src.uri
        self._ref = ref
        self._policy = policy
        self._env = dict(gdal_env or {})

    def read(self, cfg: Any, dst_geobox: Any, *, dst: Any = None, selection: Any = None) -> Any:
        tries = 0

        def read() -> Any:
            nonlocal tries
            tries += 1
            env = dict(self._env)
            if tries > 1 and "://" in self._href:
                # GDAL remembers a failed URL (and its partial reads): a retry must not be
                # answered from that cache, or it fails in no time without asking the server.
                env["CPL_VSIL_CURL_NON_CACHED"] = _vsi_path(self._href)
            with rasterio.Env(**env):
                exact = exact_read(self._src, cfg, dst_geobox, dst=dst, selection=selection)
                if exact is not None:
                    return exact
                return self._inner.read(cfg, dst_geobox, dst=dst, selection=selection)

        roi, pixels = retry_call(read, self._policy, href=self._href, ref=self._ref)
        if self._ref is not None and self._ref.conversion.kind != "none":
            # odc-loader reads each source into its own buffer (dst=None) and fuses after, so
            # converting in place touches only this item's pixels.
            self._ref.conversion.apply(pixels)
        return roi, pixels


def _vsi_path(href: str) -> str:
    """The GDAL virtual file name rasterio opens for a URL (``/vsicurl/...``, ``/vsis3/...``)."""
    for scheme, vsi in (("s3://", "/vsis3/"), ("gs://", "/vsigs/"), ("az://", "/vsiaz/")):
        if href.startswith(scheme):
            return vsi + href[len(scheme) :]
    return "/vsicurl/" + href


def retrying_driver(
    policy: RetryPolicy,
    index: Mapping[str, AssetRef],
    gdal_env: Mapping[str, str] | None = None,
) -> Any:
    """Return an odc-loader reader driver (for ``odc.stac.load(driver=...)``) that retries reads.

    Args:
        policy: attempts and backoff per chunk read.
        index: href -> :class:`AssetRef`, from :func:`asset_index`, for the error messages.
        gdal_env: GDAL options every read runs under (``AWS_REQUEST_PAYER``); they travel with
            the driver to whichever worker reads.
    """
    env = read_env(policy, gdal_env)

    install_log_redaction()  # odc-loader logs failing hrefs, SAS tokens and all

    class RetryingRioDriver(RioDriver):
        """odc-loader's rasterio driver with retried, asset-naming reads."""

        def __init__(self) -> None:
            super().__init__()
            self.policy = policy
            self.index = dict(index)
            self.env = env

        def open(self, src: Any, ctx: Any) -> _RetryingReader:  # type: ignore[override]
            return _RetryingReader(
                super().open(src, ctx), src, self.index.get(src.uri), self.policy, self.env
            )

        def __reduce__(self) -> tuple[Any, ...]:  # a local class: pickle via the factory
            return (retrying_driver, (self.policy, self.index, self.env))

    return RetryingRioDriver()


def find_bad_assets(
    items: Sequence[pystac.Item],
    keys: Sequence[str],
    geobox: GeoBox,
    policy: RetryPolicy,
    gdal_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Read each asset's window over ``geobox``; return item id -> error for those that fail.

    Used only with ``skip_bad_assets``: it costs one extra read of the region, which is the price
    of knowing before the (lazy) build which dates are unreadable.
    """

    def probe(item: pystac.Item, key: str) -> tuple[str, str] | None:
        href = item.assets[key].get_absolute_href() or item.assets[key].href

        def read() -> None:
            env = read_env(policy, gdal_env)
            with rasterio.Env(**env), rasterio.open(href) as src:
                b = geobox.extent.to_crs(str(src.crs)).boundingbox
                win = from_bounds(*b, transform=src.transform).round_offsets().round_lengths()
                full = rasterio.windows.Window(0, 0, src.width, src.height)
                src.read(1, window=win.intersection(full))

        try:
            retry_call(read, policy, href=href, ref=AssetRef(item.id, key))
        except AssetReadError as exc:
            return item.id, str(exc)
        except rasterio.errors.WindowError:
            return None  # asset does not overlap the grid: nothing to read, nothing bad
        return None

    jobs = [(item, key) for item in items for key in keys]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: probe(*job), jobs))
    return dict(r for r in results if r is not None)

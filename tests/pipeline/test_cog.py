"""COG writer: valid per rio-cogeo, exact quantised pixels, nodata, tags, overviews, atomic."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate

from clearcube.errors import BadInputError, ClearcubeError
from clearcube.pipeline.cog import (
    COMPOSITE,
    PROVENANCE_ENCODING,
    UNCERTAINTY,
    CogEncoding,
    overview_count,
    quantise,
    write_cog,
    write_mosaic_cogs,
)

TRANSFORM = (10.0, 0.0, 399960.0, 0.0, -10.0, 5100000.0)  # a real UTM 33N grid origin
TAGS = {
    "clearcube_version": "0.1.0",
    "checkpoint_sha256": "ab" * 32,
    "sampler": "ddim",
    "steps": "50",
    "dates": "2024-06-01,2024-06-11,2024-06-21",
}


def _reflectance(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 0.6, size=shape).astype(np.float32)
    values[0, :7, :9] = np.nan  # a hole: nodata
    values[1, 3, 3] = 7.0  # out of range: clipped to 65535
    values[-1, 4, 4] = 0.0  # valid zero reflectance: kept off the nodata value
    return values


def test_quantise_matches_closed_form() -> None:
    values = np.array([np.nan, 0.0, 0.00004, 0.1234, 0.12346, 6.5536, 9.0, -0.2])
    # NaN -> nodata 0; valid values round to DN and stay within 1..65535, off the nodata value
    expected = np.array([0, 1, 1, 1234, 1235, 65535, 65535, 1], dtype=np.uint16)
    np.testing.assert_array_equal(quantise(values, COMPOSITE), expected)
    out = quantise(np.array([np.nan, 0.25]), UNCERTAINTY)
    assert np.isnan(out[0]) and out[1] == np.float32(0.25) and out.dtype == np.float32


def test_composite_cog_is_valid_and_round_trips(tmp_path: Path) -> None:
    data = _reflectance((3, 1100, 1300))
    path = write_cog(
        data,
        tmp_path / "composite.tif",
        crs="EPSG:32633",
        transform=TRANSFORM,
        band_names=("B04", "B03", "B02"),
        tags=TAGS,
        window=(512, 512),
    )
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as src:
        assert src.dtypes == ("uint16",) * 3 and src.nodata == 0
        assert src.crs.to_epsg() == 32633 and tuple(src.transform)[:6] == TRANSFORM
        assert src.descriptions == ("B04", "B03", "B02")
        assert {k: src.tags()[k] for k in TAGS} == TAGS
        assert src.overviews(1) and src.block_shapes[0] == (512, 512)
        assert src.scales == (1e-4,) * 3
        np.testing.assert_array_equal(src.read(), quantise(data, COMPOSITE))
    assert [p.name for p in tmp_path.iterdir()] == ["composite.tif"]  # no temp files left


def test_uncertainty_cog_is_float_with_nan_nodata(tmp_path: Path) -> None:
    data = _reflectance((2, 300, 200), seed=3) / 10
    path = write_cog(
        data,
        tmp_path / "u.tif",
        crs="EPSG:32633",
        transform=TRANSFORM,
        band_names=("B02", "B03"),
        tags=TAGS,
        encoding=UNCERTAINTY,
    )
    with rasterio.open(path) as src:
        assert src.dtypes == ("float32", "float32") and math.isnan(src.nodata)
        np.testing.assert_array_equal(src.read(), quantise(data, UNCERTAINTY))


def test_zstd_and_zarr_source_and_atomic_replace(tmp_path: Path) -> None:
    import zarr

    data = _reflectance((2, 600, 700), seed=5)
    source = zarr.create_array(
        tmp_path / "src.zarr", shape=data.shape, chunks=(2, 256, 256), dtype="float32"
    )
    source[:] = data
    out = tmp_path / "c.tif"
    out.write_bytes(b"old")
    write_cog(
        source,
        out,
        crs="EPSG:32633",
        transform=TRANSFORM,
        band_names=("a", "b"),
        tags={},
        encoding=CogEncoding(dtype="uint16", scale=10000.0, nodata=0, compress="zstd"),
    )
    with rasterio.open(out) as src:
        assert src.compression is not None and src.compression.name.lower() == "zstd"
        np.testing.assert_array_equal(src.read(), quantise(data, COMPOSITE))


def test_band_name_mismatch_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        write_cog(
            np.zeros((2, 4, 4)),
            tmp_path / "x.tif",
            crs="EPSG:32633",
            transform=TRANSFORM,
            band_names=("only-one",),
            tags={},
        )
    assert not list(tmp_path.iterdir())


def test_mosaic_store_to_cogs(tmp_path: Path) -> None:
    from mosaic_oracle import assemble, fill_mosaic

    from clearcube.pipeline.mosaic import MosaicSpec, open_mosaic
    from clearcube.pipeline.tiles import plan_tiles

    plan = plan_tiles(300, 260, tile=128, overlap=32)
    image = _reflectance((2, 300, 260), seed=9)
    image[0, :7, :9] = 0.3  # the composite has no holes
    spec = MosaicSpec(
        plan=plan, bands=("B03", "B04"), fingerprint="f", crs="EPSG:32633", transform=TRANSFORM
    )
    store = open_mosaic(tmp_path / "m.zarr", spec)
    cut = {t: image[:, t.y0 : t.y1, t.x0 : t.x1] for t in plan}
    fill_mosaic(store, lambda t: {"composite": cut[t], "uncertainty": 0.01 * cut[t]})
    with pytest.raises(ClearcubeError, match="not assembled"):
        write_mosaic_cogs(store, tmp_path / "out", tags=TAGS)
    assemble(store)
    paths = write_mosaic_cogs(store, tmp_path / "out", tags=TAGS)
    with rasterio.open(paths["composite"]) as src:
        # blending tiles cut from one image returns it: DN equal up to float32 rounding at .5 ties
        dn = src.read().astype(int)
        assert np.abs(dn - quantise(image, COMPOSITE).astype(int)).max() <= 1
    with rasterio.open(paths["uncertainty"]) as src:
        assert src.dtypes[0] == "float32"


def test_invalid_cog_raises_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rio_cogeo.cogeo

    # the validator is rio-cogeo's, not ours: make it reject to exercise our failure path
    monkeypatch.setattr(
        rio_cogeo.cogeo, "cog_validate", lambda *a, **k: (False, ["bad IFD order"], [])
    )
    out = tmp_path / "c.tif"
    out.write_bytes(b"previous run")
    with pytest.raises(ClearcubeError, match="bad IFD order"):
        write_cog(
            np.zeros((1, 8, 8)),
            out,
            crs="EPSG:32633",
            transform=TRANSFORM,
            band_names=("a",),
            tags={},
        )
    assert out.read_bytes() == b"previous run" and [p.name for p in tmp_path.iterdir()] == ["c.tif"]


def test_float32_quantise_equals_the_float64_definition_even_at_ties() -> None:
    """rint(value × 10000) in float64 is the definition; the float32 route must not move a DN."""
    from clearcube.pipeline.cog import COMPOSITE, quantise

    rng = np.random.default_rng(0)
    values = rng.uniform(-0.1, 7.0, size=(3, 64, 64)).astype(np.float32)
    ties = ((np.arange(1, 64 * 64 + 1) * 13 + 0.5) / 1e4).astype(np.float32)  # x.5 DN
    values[1] = ties.reshape(64, 64)
    values[2, 0, :5] = [np.nan, np.inf, -np.inf, 0.0, 6.5535]
    wide = values.astype(np.float64) * 1e4
    missing = ~np.isfinite(wide)
    expected = np.clip(np.rint(np.where(missing, 0.0, wide)), 1, 65535).astype(np.uint16)
    expected[missing] = 0
    np.testing.assert_array_equal(quantise(values, COMPOSITE), expected)
    np.testing.assert_array_equal(quantise(values.astype(np.float64), COMPOSITE), expected)


class _CountingSource:
    """A numpy product that records how many window reads run at once, and fails on request.

    With ``meet=n`` the first ``n`` reads wait for one another at a barrier (5 s): they pass
    only when they run at the same time, so overlap is checked without relying on timing.
    """

    def __init__(self, data: np.ndarray, fail_at: int | None = None, meet: int = 1) -> None:
        self.data, self.fail_at = data, fail_at
        self.shape = data.shape
        self.reads = self.running = self.most_running = 0
        self._lock = threading.Lock()
        self._meet = threading.Barrier(meet, timeout=5) if meet > 1 else None

    def __getitem__(self, key: Any) -> np.ndarray:
        with self._lock:
            self.reads += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            n = self.reads
        try:
            if self._meet is not None and n <= self._meet.parties:
                self._meet.wait()  # BrokenBarrierError when the reads do not overlap
            if n == self.fail_at:
                raise OSError("disk went away")
            return np.asarray(self.data[key])
        finally:
            with self._lock:
                self.running -= 1


def test_windows_staged_on_threads_give_the_serial_pixels(tmp_path: Path) -> None:
    data = _reflectance((3, 1100, 1300))
    written = {}
    for threads in (0, 2):
        source = _CountingSource(data, meet=max(threads, 1))
        path = write_cog(
            source,
            tmp_path / f"t{threads}.tif",
            crs="EPSG:32633",
            transform=TRANSFORM,
            band_names=("B04", "B03", "B02"),
            tags=TAGS,
            threads=threads,
        )
        with rasterio.open(path) as src:
            written[threads] = src.read()
        assert source.reads == 9  # 3 × 3 windows of 512 px, each read once
        assert source.most_running == max(threads, 1)  # overlap (the barrier) and its bound
    np.testing.assert_array_equal(written[0], written[2])
    np.testing.assert_array_equal(written[0], quantise(data, COMPOSITE))


def test_a_failed_window_read_leaves_the_old_file_and_no_temporaries(tmp_path: Path) -> None:
    out = tmp_path / "c.tif"
    out.write_bytes(b"previous run")
    with pytest.raises(OSError, match="disk went away"):
        write_cog(
            _CountingSource(_reflectance((3, 1100, 1300)), fail_at=5),
            out,
            crs="EPSG:32633",
            transform=TRANSFORM,
            band_names=("B04", "B03", "B02"),
            tags=TAGS,
            threads=2,
        )
    assert out.read_bytes() == b"previous run" and [p.name for p in tmp_path.iterdir()] == ["c.tif"]


def _pyramid_oracle(stored: np.ndarray, nodata: float, levels: int) -> list[np.ndarray]:
    """Overview levels by definition: each pixel the mean of the valid pixels of its 2 × 2.

    Built from the four shifted sub-grids (``x[dy::2, dx::2]``), padded with nodata at odd
    edges, in float64; uint16 rounds half up. Each level is made from the one before.
    """
    out = []
    for _ in range(levels):
        bands, h, w = stored.shape
        size = (bands, -(-h // 2), -(-w // 2))
        quads = np.full((4, *size), np.nan)
        for i, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            sub = stored[:, dy::2, dx::2]
            part = sub.astype(np.float64)
            part[sub == stored.dtype.type(nodata)] = np.nan  # nodata as the file stores it
            quads[i, :, : part.shape[1], : part.shape[2]] = part
        with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="empty"):
            mean = np.nanmean(quads, axis=0)
        if stored.dtype == np.uint16:
            stored = np.where(np.isnan(mean), 0, np.floor(mean + 0.5)).astype(np.uint16)
        else:  # no valid pixel: the nodata value
            stored = np.where(np.isnan(mean), np.float32(nodata), mean).astype(np.float32)
        out.append(stored)
    return out


def _overviews(path: Path) -> list[np.ndarray]:
    with rasterio.open(path) as src:
        return [
            src.read(out_shape=(src.count, -(-src.height // f), -(-src.width // f)))
            for f in src.overviews(1)
        ]


@pytest.mark.parametrize(
    "encoding",
    [COMPOSITE, UNCERTAINTY, CogEncoding(dtype="float32", scale=1.0, nodata=0.1)],
    ids=["uint16", "float32", "float32-nodata-0.1"],  # 0.1: not exact in float32
)
def test_overviews_are_the_mean_of_the_valid_pixels_of_each_two_by_two(
    tmp_path: Path, encoding: CogEncoding
) -> None:
    data = _reflectance((2, 1101, 1301), seed=11)  # odd sides: the edge pixels average 1 or 2
    data[0, 100:400, 50:700] = np.nan  # a hole wider than one window
    data[:, ::3, ::5] = np.nan  # scattered nodata: pixels averaging 1..4 valid values
    path = write_cog(
        data,
        tmp_path / "c.tif",
        crs="EPSG:32633",
        transform=TRANSFORM,
        band_names=("a", "b"),
        tags={},
        encoding=encoding,
    )
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]  # 1301 -> 651 -> 326 fits a 512 px block
    expected = _pyramid_oracle(quantise(data, encoding), encoding.nodata, 2)
    for got, want in zip(_overviews(path), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_overviews_equal_gdals_own_on_even_sides(tmp_path: Path) -> None:
    """Where GDAL's average is a plain 2 × 2 mean (even sides), it is the independent oracle."""
    data = _reflectance((2, 1024, 2048), seed=4)
    data[:, ::3, ::7] = np.nan
    ours = write_cog(
        data, tmp_path / "ours.tif", crs="EPSG:32633", transform=TRANSFORM,
        band_names=("a", "b"), tags={},
    )  # fmt: skip
    plain = tmp_path / "plain.tif"
    with rasterio.open(
        plain, "w", driver="GTiff", width=2048, height=1024, count=2, dtype="uint16", nodata=0
    ) as dst:
        dst.write(quantise(data, COMPOSITE))
    rasterio.shutil.copy(
        plain, tmp_path / "gdal.tif", driver="COG", overviews="AUTO", overview_resampling="AVERAGE"
    )
    gdal = _overviews(tmp_path / "gdal.tif")
    assert len(gdal) == 2
    for got, want in zip(_overviews(ours), gdal, strict=True):
        np.testing.assert_array_equal(got, want)


def test_overview_count_halves_rounding_up_until_one_block_holds_a_level() -> None:
    for height, width in [(1, 1), (512, 512), (513, 100), (300, 2304), (4097, 9), (1025, 1025),
                          (70_000, 12_345)]:  # fmt: skip
        side = max(height, width)
        # ⌈side / 2^k⌉ <= 512  <=>  side <= 512 · 2^k  <=>  k >= log2(side / 512)
        assert overview_count(height, width) == max(0, math.ceil(math.log2(side / 512)))


def test_windows_that_do_not_halve_evenly_give_the_same_cog(tmp_path: Path) -> None:
    """Windows of 66 or 301 px halve once or never: the rest is built from the level before."""
    data = _reflectance((2, 1101, 1301), seed=2)
    data[:, ::3, ::5] = np.nan
    paths = [
        write_cog(
            data, tmp_path / f"w{rows}.tif", crs="EPSG:32633", transform=TRANSFORM,
            band_names=("a", "b"), tags={}, window=(rows, cols),
        )
        for rows, cols in ((512, 512), (64, 66), (300, 301))
    ]  # fmt: skip
    first, *others = (_overviews(p) for p in paths)
    assert len(first) == 2
    for other in others:  # 66 px: level 2 read back; 301 px: both levels read back
        for a, b in zip(first, other, strict=True):
            np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w300.tif", "w512.tif", "w64.tif"]


def test_provenance_overviews_take_one_pixel_of_each_two_by_two(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    classes = rng.integers(1, 4, size=(1, 1001, 700)).astype(np.float64)
    path = write_cog(
        classes, tmp_path / "p.tif", crs="EPSG:32633", transform=TRANSFORM,
        band_names=("provenance",), tags={}, encoding=PROVENANCE_ENCODING,
    )  # fmt: skip
    (level,) = _overviews(path)  # 1001 x 700 -> 501 x 350: one level
    np.testing.assert_array_equal(level, classes[:, ::2, ::2].astype(np.uint16))


def test_overviews_are_found_when_the_caller_turned_off_folder_listing(tmp_path: Path) -> None:
    """The cube loader's GDAL settings (no directory listing) must not hide the staged levels."""
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        path = write_cog(
            _reflectance((2, 1100, 600)), tmp_path / "c.tif", crs="EPSG:32633",
            transform=TRANSFORM, band_names=("a", "b"), tags={},
        )  # fmt: skip
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]  # 1100 -> 550 -> 275


def test_an_overview_resampling_clearcube_does_not_build_is_refused() -> None:
    with pytest.raises(BadInputError, match="'average' or 'nearest'"):
        CogEncoding(dtype="uint16", scale=1.0, nodata=0, resampling="bilinear")  # type: ignore[arg-type]

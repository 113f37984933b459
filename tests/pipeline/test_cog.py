"""COG writer: valid per rio-cogeo, exact quantised pixels, nodata, tags, overviews, atomic."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from clearcube.errors import BadInputError, ClearcubeError
from clearcube.pipeline.cog import (
    COMPOSITE,
    UNCERTAINTY,
    CogEncoding,
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

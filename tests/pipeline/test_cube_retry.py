"""Read retries and bad assets: backoff, transient failures recovered, corrupt/404 named, skipping."""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio

from clearcube.errors import AssetReadError, BadInputError, redact
from clearcube.pipeline.cube import RetryPolicy, load_cube
from clearcube.pipeline.retry import AssetRef, retry_call

sys.path.insert(0, str(Path(__file__).parent))
from cube_fixtures import inner_bbox, make_s1_item, make_s2_item

FAST = RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.01)
ASSETS = {"B02": "blue", "B05": "rededge1"}
BBOX = inner_bbox(600)


def at(day: int) -> datetime:
    return datetime(2024, 6, day, 10, tzinfo=UTC)


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(attempts=5, backoff_base=0.1, backoff_max=0.3)
    assert list(policy.delays()) == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert list(RetryPolicy(attempts=1).delays()) == []
    with pytest.raises(BadInputError):
        RetryPolicy(attempts=0)


def test_a_file_that_appears_during_backoff_is_read(tmp_path: Path) -> None:
    item = make_s2_item(tmp_path / "src", "s", at(1), 0, bands=("B02",))
    src = Path(item.assets["blue"].href)
    target = tmp_path / "late.tif"
    sleeps: list[float] = []

    def sleep(delay: float) -> None:  # the file shows up after the second failure
        sleeps.append(delay)
        if len(sleeps) == 2:
            shutil.copy(src, target)

    def read() -> np.ndarray:
        with rasterio.open(target) as ds:
            return ds.read(1)

    policy = RetryPolicy(attempts=4, backoff_base=0.5, backoff_max=8)
    got = retry_call(read, policy, href=str(target), sleep=sleep)
    assert sleeps == [0.5, 1.0]
    with rasterio.open(src) as ds:
        np.testing.assert_array_equal(got, ds.read(1))


def test_exhausted_retries_name_the_asset(tmp_path: Path) -> None:
    missing = tmp_path / "gone.tif"
    with pytest.raises(AssetReadError) as err:
        retry_call(
            lambda: rasterio.open(missing), FAST, href=str(missing), ref=AssetRef("it-1", "blue"),
            sleep=lambda d: None,
        )  # fmt: skip
    msg = str(err.value)
    assert "'blue'" in msg and "'it-1'" in msg and str(missing) in msg and "2 attempt" in msg
    assert "--skip-bad-assets" in msg and "\n" not in msg


def test_a_bug_is_not_retried() -> None:
    calls: list[int] = []

    def buggy() -> None:
        calls.append(1)
        raise TypeError("bug")

    with pytest.raises(TypeError):
        retry_call(buggy, FAST, href="x", sleep=lambda d: None)
    assert calls == [1]


def test_transient_missing_asset_recovers_inside_the_dask_load(tmp_path: Path) -> None:
    item = make_s2_item(tmp_path, "late", at(1), 0, bands=("B02", "B05"))
    href = Path(item.assets["blue"].href)
    hidden = href.with_suffix(".hidden")
    href.rename(hidden)
    ds = load_cube(
        [item], None, bbox=BBOX, s2_assets=ASSETS,
        retry=RetryPolicy(attempts=12, backoff_base=0.05, backoff_max=0.4),
    )  # fmt: skip
    timer = threading.Timer(0.3, lambda: hidden.rename(href))
    timer.start()
    try:
        values = ds["s2"].sel(band="B02").values
    finally:
        timer.join()
    assert (values > 0).all()


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def test_truncated_asset_is_named(tmp_path: Path) -> None:
    good = make_s2_item(tmp_path, "good", at(1), 0, bands=("B02", "B05"))
    bad = make_s2_item(tmp_path, "bad", at(11), 1, bands=("B02", "B05"))
    _truncate(Path(bad.assets["rededge1"].href))
    ds = load_cube([good, bad], None, bbox=BBOX, s2_assets=ASSETS, retry=FAST)
    with pytest.raises(AssetReadError, match=r"asset 'rededge1' of item 'bad' at .*rededge1\.tif"):
        ds.compute()


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server over a folder (GDAL reads hrefs through /vsicurl/)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _served(item: pystac.Item, root: Path, url: str) -> pystac.Item:
    for asset in item.assets.values():
        asset.href = url + "/" + Path(asset.href).relative_to(root).as_posix()
    return item


def test_http_404_is_named(http_root: tuple[Path, str]) -> None:
    root, url = http_root
    good = _served(make_s2_item(root, "good", at(1), 0, bands=("B02", "B05")), root, url)
    lost = _served(make_s2_item(root, "lost", at(11), 1, bands=("B02", "B05")), root, url)
    shutil.rmtree(root / "lost")
    np.testing.assert_array_equal(  # the good one reads over HTTP
        load_cube([good], None, bbox=BBOX, s2_assets=ASSETS)["s2"].values > 0, True
    )
    ds = load_cube([good, lost], None, bbox=BBOX, s2_assets=ASSETS, retry=FAST)
    with pytest.raises(AssetReadError, match=rf"of item 'lost' at {url}/lost/"):
        ds.compute()


def test_skip_bad_assets_drops_the_date_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = [
        make_s2_item(tmp_path, f"d{k}", at(1 + 10 * k), k, bands=("B02", "B05")) for k in range(3)
    ]
    _truncate(Path(items[1].assets["blue"].href))
    s1_ok = make_s1_item(tmp_path, "s1ok", at(2), 0)
    s1_bad = make_s1_item(tmp_path, "s1bad", at(21), 1)
    (Path(s1_bad.assets["vh"].href)).unlink()
    pairs = {"d0": "s1ok", "d1": None, "d2": "s1bad"}
    with caplog.at_level(logging.WARNING, logger="clearcube"):
        ds = load_cube(
            items, [s1_ok, s1_bad], bbox=BBOX, s2_assets=ASSETS, s1_pairing=pairs, retry=FAST,
            skip_bad_assets=True,
        )  # fmt: skip
    assert list(ds.time.values) == [
        np.datetime64("2024-06-01T10:00"),
        np.datetime64("2024-06-21T10:00"),
    ]
    # the date with the bad S2 asset is gone; the bad S1 scene only loses its pairing
    assert np.isnat(ds.s1_time.values[1]) and np.isnan(ds["s1"].isel(time=1).values).all()
    assert not np.isnan(ds["s1"].isel(time=0).values).any()
    assert (ds["s2"].values > 0).all()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'d1'" in warned and "'s1bad'" in warned
    items[0].assets["blue"].href = str(tmp_path / "nowhere.tif")
    items[2].assets["blue"].href = str(tmp_path / "nowhere.tif")
    with pytest.raises(BadInputError, match="every Sentinel-2 date"):
        load_cube(items, None, bbox=BBOX, s2_assets=ASSETS, retry=FAST, skip_bad_assets=True)


@pytest.mark.integration
def test_asset_error_reaches_a_distributed_client_intact(tmp_path: Path) -> None:
    """A worker process's AssetReadError arrives as itself, naming the asset (not a bare Exception)."""
    from distributed import Client, LocalCluster

    missing = str(tmp_path / "gone.tif")

    def read_missing(href: str) -> None:
        # Defined here so cloudpickle sends it by value: workers cannot import test modules.
        import rasterio

        from clearcube.pipeline.retry import RetryPolicy, retry_call

        retry_call(lambda: rasterio.open(href), RetryPolicy(attempts=1), href=href)

    with (
        LocalCluster(n_workers=1, processes=True, host="127.0.0.1", dashboard_address=None) as c,
        Client(c) as client,
        pytest.raises(AssetReadError, match=r"gone\.tif"),
    ):
        client.submit(read_missing, missing).result()


def test_signed_query_strings_never_reach_errors_or_logs(
    http_root: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A Planetary-Computer-style SAS token on a dead href: the error names the asset, not it."""
    root, url = http_root
    secret = "sv=2021-06-08&se=2026-12-02T00%3A00%3A00Z&sp=rl&sig=S3CR3TSIGNATUREabc%3D"
    lost = make_s2_item(root, "lost", at(1), 0, bands=("B02", "B05"))
    for asset in lost.assets.values():
        asset.href = f"{url}/gone/{Path(asset.href).name}?{secret}"
    ds = load_cube([lost], None, bbox=BBOX, s2_assets=ASSETS, retry=FAST)
    with caplog.at_level(logging.DEBUG), pytest.raises(AssetReadError) as info:
        ds.compute()
    message = str(info.value)
    assert f"{url}/gone/" in message and "?<redacted>" in message
    for text in (message, caplog.text):
        assert "S3CR3T" not in text and "sig=" not in text


def test_redact_keeps_the_url_and_drops_only_its_query() -> None:
    text = (
        "cannot open 'https://x.blob.core.windows.net/a/b.tif?st=1&sig=abc' (HTTP 403) and s3://b/k"
    )
    assert (
        redact(text)
        == "cannot open 'https://x.blob.core.windows.net/a/b.tif?<redacted>' (HTTP 403) and s3://b/k"
    )


def test_a_logged_traceback_shows_no_signed_query(caplog: pytest.LogCaptureFixture) -> None:
    from clearcube.errors import install_log_redaction

    install_log_redaction()
    log = logging.getLogger("clearcube.test")
    try:
        raise OSError("HTTP 403 on https://x.blob.core.windows.net/a.tif?st=1&sig=T0KEN")
    except OSError:
        log.exception("read failed")
    assert "read failed" in caplog.text and "blob.core.windows.net/a.tif" in caplog.text
    assert "T0KEN" not in caplog.text


class _FaultyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``fail`` paths always answer 503, ``stall`` paths never answer, and
    other requests fail with probability ``flaky`` (a seeded generator: reproducible)."""

    fail: frozenset[str] = frozenset()
    stall: frozenset[str] = frozenset()
    flaky: float = 0.0
    rng = np.random.default_rng(0)
    lock = threading.Lock()
    failures = 0

    def do_GET(self) -> None:
        self._serve(super().do_GET)

    def do_HEAD(self) -> None:
        self._serve(super().do_HEAD)

    def _serve(self, ok: Any) -> None:
        path = self.path.split("?")[0]
        if any(path.startswith(p) for p in self.stall):
            time.sleep(30)
            return
        with self.lock:
            bad = path in self.fail or any(path.startswith(p) for p in self.fail)
            bad = bad or self.rng.random() < self.flaky
            if bad:
                type(self).failures += 1
        if bad:
            self.send_error(503, "try later")
            return
        ok()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def faulty_server(root: Path, **faults: Any) -> Iterator[tuple[str, Any]]:
    handler = type("Handler", (_FaultyHandler,), {**faults, "failures": 0})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        thread.join()


def test_a_permanently_failing_asset_is_named_within_the_budget(tmp_path: Path) -> None:
    good = make_s2_item(tmp_path, "good", at(1), 0, bands=("B02", "B05"))
    dead = make_s2_item(tmp_path, "dead", at(11), 1, bands=("B02", "B05"))
    with faulty_server(tmp_path, fail=frozenset({"/dead/"})) as (url, _):
        items = [_served(good, tmp_path, url), _served(dead, tmp_path, url)]
        start = time.monotonic()
        ds = load_cube(items, None, bbox=BBOX, s2_assets=ASSETS)  # the default policy
        with pytest.raises(AssetReadError, match=rf"of item 'dead' at {url}/dead/.*503"):
            ds.compute()
        assert time.monotonic() - start < 30  # 4 attempts, 3.5 s of backoff: no GDAL retries below


def test_a_stalled_server_cannot_hang_a_read(tmp_path: Path) -> None:
    """A server that accepts and never answers: GDAL's timeout (from the policy) ends each try
    and the budget ends the read, naming the asset."""
    item = make_s2_item(tmp_path, "slow", at(1), 0, bands=("B02",))
    policy = RetryPolicy(attempts=10, backoff_base=0.1, http_timeout_s=2, budget_s=5)
    with faulty_server(tmp_path, stall=frozenset({"/slow/"})) as (url, _):
        start = time.monotonic()
        ds = load_cube(
            [_served(item, tmp_path, url)], None, bbox=BBOX, s2_assets={"B02": "blue"}, retry=policy
        )
        with pytest.raises(AssetReadError, match="of item 'slow'"):
            ds.compute()
        elapsed = time.monotonic() - start
    assert elapsed < 20, elapsed  # without the timeout it would wait as long as the server


def test_thirty_percent_failed_requests_give_the_undisturbed_cube(tmp_path: Path) -> None:
    items = [
        make_s2_item(tmp_path, f"d{i}", at(1 + 10 * i), i, bands=("B02", "B05")) for i in range(2)
    ]
    undisturbed = load_cube(items, None, bbox=BBOX, s2_assets=ASSETS)["s2"].values
    policy = RetryPolicy(attempts=8, backoff_base=0.01, backoff_max=0.05)
    with faulty_server(tmp_path, flaky=0.3, rng=np.random.default_rng(7)) as (url, handler):
        served = [_served(i.clone(), tmp_path, url) for i in items]
        start = time.monotonic()
        got = load_cube(served, None, bbox=BBOX, s2_assets=ASSETS, retry=policy)["s2"].values
        elapsed = time.monotonic() - start
    np.testing.assert_array_equal(got, undisturbed)
    assert handler.failures >= 1, "the server did fail requests"
    assert elapsed < 30, elapsed

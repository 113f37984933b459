"""``clearcube search`` in-process: table, JSON, and exit code 2 with one line on bad input."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from stac_expected import expected_ids, item_time, nearest_pairs, parse_time

from clearcube.catalogs.server import free_port
from clearcube.pipeline.cli import main

BBOX = ["27.0", "-8.0", "27.1", "-7.9"]
WORLD = ["-180", "-90", "180", "90"]


def _search_args(url: str, *extra: str) -> list[str]:
    return [
        "search", "--stac-url", url, "--collections", "sentinel-2-l2a", "sentinel-1-grd",
        "--level", "L2A", *extra,
    ]  # fmt: skip


@pytest.mark.integration
def test_json_output_matches_raw_json(
    real_api: str, raw: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--bbox", *WORLD, "--start", "2019-01-01", "--end", "2025-07-31", "--json"]
    assert main(_search_args(real_api, *args)) == 0
    out = json.loads(capsys.readouterr().out)
    t0, t1 = parse_time("2019-01-01T00:00:00Z"), parse_time("2025-07-31T23:59:59.999999Z")
    tol = timedelta(days=3)
    s2 = expected_ids(
        raw, collections=["sentinel-2-l2a"], bbox=[-180, -90, 180, 90], start=t0, end=t1
    )
    s1 = expected_ids(
        raw, collections=["sentinel-1-grd"], bbox=[-180, -90, 180, 90], start=t0 - tol, end=t1 + tol
    )
    by_id = {i["id"]: i for i in raw}
    want = nearest_pairs(
        {i: item_time(by_id[i]) for i in s2}, {i: item_time(by_id[i]) for i in s1}, tol
    )
    assert {r["id"]: r["s1_id"] for r in out["s2"]} == want
    assert {r["id"] for r in out["s1"]} == s1
    assert out["stac_url"] == real_api
    for row in out["s2"]:
        assert parse_time(row["datetime"]) == item_time(by_id[row["id"]])
        assert row["cloud_cover"] == by_id[row["id"]]["properties"]["eo:cloud_cover"]


@pytest.mark.integration
def test_table_has_one_row_per_scene(
    real_api: str, raw: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--bbox", *BBOX, "--start", "2020-06-01", "--end", "2020-07-31", "--max-cloud", "5"]
    assert main(_search_args(real_api, *args)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    want = expected_ids(
        raw,
        collections=["sentinel-2-l2a"],
        bbox=[27.0, -8.0, 27.1, -7.9],
        start=parse_time("2020-06-01T00:00:00Z"),
        end=parse_time("2020-07-31T23:59:59.999999Z"),
        max_cloud=5.0,
    )
    header, rows, summary = lines[0], lines[1:-1], lines[-1]
    assert header.split()[:3] == ["date", "(UTC)", "platform"]
    assert {r.split()[-1] for r in rows} == want
    assert summary.startswith(f"{len(want)} Sentinel-2 scenes, 0 Sentinel-1 scenes, 0 paired")
    for row in rows:
        cloud = float(row.split()[4])
        assert 0 <= cloud <= 5


def _closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


BAD = [
    ["--bbox", "10", "45", "9", "46", "--start", "2024-05-01", "--end", "2024-05-31"],
    ["--bbox", "10", "45", "200", "46", "--start", "2024-05-01", "--end", "2024-05-31"],
    ["--bbox", *BBOX, "--start", "2024-06-01", "--end", "2024-05-31"],
    ["--bbox", *BBOX, "--start", "2024-02-30", "--end", "2024-05-31"],
    ["--bbox", *BBOX, "--start", "2024-05-01", "--end", "2024-05-31", "--profile", "nope"],
    ["--bbox", *BBOX, "--start", "2024-05-01", "--end", "2024-05-31", "--max-cloud", "-1"],
    ["--bbox", *BBOX, "--start", "2024-05-01", "--end", "2024-05-31", "--stac-url", "http://x"],
]


@pytest.mark.parametrize("args", BAD)
def test_bad_input_exits_2_with_one_line(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clearcube: error: ") and "\n" not in err


def test_unreachable_api_exits_2_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = _closed_url()
    args = ["--bbox", *BBOX, "--start", "2024-05-01", "--end", "2024-05-31", "--no-s1"]
    assert main(["search", "--stac-url", url, "--collections", "s2", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot reach the STAC API at {url}" in err and "\n" not in err


@pytest.mark.integration
@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--start", "1999-01-01", "--end", "1999-12-31"], "no Sentinel-2 items"),
        (["--start", "2020-06-01", "--end", "2020-07-31", "--collections", "s2-l9"], "not served"),
    ],
)
def test_server_side_bad_input_exits_2(
    real_api: str, extra: list[str], pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["search", "--stac-url", real_api, "--collections", "sentinel-2-l2a", "--bbox", *BBOX]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert pattern in err and "\n" not in err

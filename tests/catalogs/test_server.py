"""The embedded STAC API: ``serve_catalog`` and ``clearcube catalog serve`` on real items."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pystac_client import Client

from clearcube.catalogs.server import free_port, serve_catalog
from clearcube.errors import BadInputError, CatalogError

pytestmark = pytest.mark.integration


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def _is_down(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/collections", timeout=2)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def test_collections_and_items_endpoints(real_api: str, raw: list[dict[str, Any]]) -> None:
    served = {c["id"] for c in _get(f"{real_api}/collections")["collections"]}
    assert served == {i["collection"] for i in raw}
    # the real collection document was loaded, not one generated from the items
    pc = _get(f"{real_api}/collections/sentinel-2-l2a")
    assert pc["title"] == "Sentinel-2 Level-2A"
    client = Client.open(real_api)
    for cid in served:
        collection = client.get_collection(cid)
        assert collection is not None
        want = {i["id"] for i in raw if i["collection"] == cid}
        assert {i.id for i in collection.get_items()} == want


def test_server_stops_after_the_block_even_on_error(real_catalog: Path) -> None:
    with pytest.raises(RuntimeError), serve_catalog(real_catalog) as url:
        assert not _is_down(url)
        raise RuntimeError("boom")
    assert _is_down(url)


def test_startup_is_fast(real_catalog: Path) -> None:
    started = time.perf_counter()
    with serve_catalog(real_catalog) as url:
        up = time.perf_counter() - started
        assert _get(f"{url}/collections")["collections"]
    assert up < 10.0, f"rustac serve took {up:.1f} s to answer"


def test_plain_item_files_with_relative_assets(tmp_path: Path, raw: list[dict[str, Any]]) -> None:
    item = next(i for i in raw if i["id"].endswith("T35MNM_20200818T062751"))
    local = {**item, "assets": {"B02": {"href": "./data/B02.tif", "type": "image/tiff"}}}
    local.pop("collection")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "one.json").write_text(json.dumps(local))
    (tmp_path / "notes.json").write_text("[1, 2]")  # not STAC: ignored
    with serve_catalog(tmp_path) as url:
        (found,) = Client.open(url).search(method="POST", ids=[item["id"]]).items()
    assert found.assets["B02"].href == str(tmp_path / "nested" / "data" / "B02.tif")
    assert found.collection_id == "items"


def test_missing_or_empty_folder_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"), serve_catalog(tmp_path / "nope"):
        pass
    with pytest.raises(BadInputError, match="no STAC items"), serve_catalog(tmp_path):
        pass


def test_missing_rustac_names_the_install_command(
    real_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CatalogError, match=r"pip install"), serve_catalog(real_catalog):
        pass


def test_port_in_use_is_bad_input(real_api: str, real_catalog: Path) -> None:
    taken = int(real_api.rsplit(":", 1)[1])
    with (
        pytest.raises(BadInputError, match=rf"port {taken} .*in use"),
        serve_catalog(real_catalog, port=taken),
    ):
        pass


def test_server_that_cannot_start_reports_its_output(tmp_path: Path) -> None:
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "broken",
        "geometry": None,
        "properties": {"datetime": "not-a-date"},
        "links": [],
        "assets": {},
    }
    (tmp_path / "broken.json").write_text(json.dumps(item))
    with (
        pytest.raises(CatalogError, match=r"rustac serve exited with code 1.*ERROR") as info,
        serve_catalog(tmp_path),
    ):
        pass
    assert "\n" not in str(info.value)


def test_cli_serves_in_foreground_until_interrupted(real_catalog: Path) -> None:
    port = free_port()
    code = "import sys; from clearcube.pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "catalog", "serve", str(real_catalog), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}"
        assert _get(f"{url}/collections")["collections"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert _is_down(url)
    finally:
        if proc.poll() is None:
            proc.kill()

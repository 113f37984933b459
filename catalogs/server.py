"""The embedded STAC API: a catalog folder served by ``rustac serve`` on the loopback interface.

``rustac serve`` (the CLI of the PyPI package ``rustac``) runs a STAC API with an in-memory
backend. It cannot run inside a Python thread, so it runs as a subprocess on ``127.0.0.1`` with a
free port, and :func:`serve_catalog` always stops it.

Accepted folders:

- the demo layout, ``ROOT/<collection-id>/collection.json`` plus ``items.json`` (a
  FeatureCollection) with the assets beside them;
- any folder of plain STAC JSON files: Collections, Items and FeatureCollections, at any depth.

The folder is *staged* before it is served: every JSON file is read, relative asset hrefs are made
absolute (``rustac`` rewrites item links to its own URL, so a relative href would otherwise
resolve against the API instead of the disk), and the items are written one FeatureCollection per
collection into a temporary folder. Collections without a collection document are created by
``rustac`` from their items (its memory backend does this by default).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clearcube.errors import BadInputError, CatalogError

log = logging.getLogger(__name__)

#: Seconds to wait for ``rustac serve`` to answer ``/collections`` before giving up.
STARTUP_TIMEOUT_S = 30.0

#: Collection id given to items that name none.
DEFAULT_COLLECTION = "items"


def rustac_executable() -> str:
    """Return the path of the ``rustac`` CLI, looking beside the running Python first.

    Raises:
        CatalogError: when the CLI cannot be found.
    """
    beside = Path(sys.executable).parent / "rustac"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("rustac")
    if found is None:
        raise CatalogError(
            "the rustac CLI is not installed, so the embedded STAC API cannot start; "
            "install it with: pip install 'rustac>=0.7'"
        )
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stage_catalog(folder: str | Path, dest: str | Path) -> list[Path]:
    """Write ``folder``'s collections and items into ``dest`` in the form ``rustac`` loads.

    Args:
        folder: a catalog folder (see the module docstring).
        dest: an empty folder to write into.

    Returns:
        The files to pass to ``rustac serve``: collection documents first, then one
        FeatureCollection per collection.

    Raises:
        BadInputError: when ``folder`` is missing or holds no STAC items.
    """
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise BadInputError(f"catalog folder {root} does not exist; give a folder of STAC JSON")
    collections: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(root.rglob("*.json")):
        for doc in _stac_documents(path):
            if doc.get("type") == "Collection" and "id" in doc:
                collections[str(doc["id"])] = doc
            elif doc.get("type") == "Feature" and "id" in doc:
                item = _absolute_assets(doc, path.parent)
                collection = str(item.setdefault("collection", DEFAULT_COLLECTION))
                items.setdefault(collection, {})[str(item["id"])] = item
    if not items:
        raise BadInputError(
            f"no STAC items found under {root}; it needs Item or FeatureCollection JSON files"
        )
    out = Path(dest)
    hrefs: list[Path] = []
    for doc in collections.values():
        # only licence links survive: rustac must not follow a real API's item links
        links = [ln for ln in doc.get("links", []) if ln.get("rel") == "license"]
        hrefs.append(_write_json(out / f"collection-{len(hrefs)}.json", {**doc, "links": links}))
    for n, (cid, by_id) in enumerate(items.items()):
        fc = {"type": "FeatureCollection", "features": list(by_id.values())}
        hrefs.append(_write_json(out / f"items-{n}.json", fc))
        log.debug("staged %d items of collection %s", len(by_id), cid)
    return hrefs


def _stac_documents(path: Path) -> list[dict[str, Any]]:
    """Return the STAC objects in one JSON file (none when it is not STAC)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("skipping %s: not readable JSON (%s)", path, exc)
        return []
    if not isinstance(doc, dict):
        return []
    if doc.get("type") == "FeatureCollection":
        return [f for f in doc.get("features", []) if isinstance(f, dict)]
    return [doc]


def _absolute_assets(item: dict[str, Any], base: Path) -> dict[str, Any]:
    """Return a copy of ``item`` whose relative asset hrefs are absolute paths under ``base``."""
    assets = {}
    for key, asset in item.get("assets", {}).items():
        href = str(asset.get("href", ""))
        if href and "://" not in href and not Path(href).is_absolute():
            asset = {**asset, "href": str((base / href).resolve())}
        assets[key] = asset
    # rustac replaces the navigation links; stale self/parent links would only mislead.
    links = [ln for ln in item.get("links", []) if ln.get("rel") not in {"self", "parent", "root"}]
    return {**item, "assets": assets, "links": links}


def _write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@contextmanager
def serve_catalog(
    folder: str | Path, *, port: int | None = None, timeout: float = STARTUP_TIMEOUT_S
) -> Iterator[str]:
    """Serve a catalog folder as a STAC API on 127.0.0.1 for the duration of a ``with`` block.

    Args:
        folder: the catalog folder (see the module docstring).
        port: the TCP port; ``None`` picks a free one.
        timeout: seconds to wait for the API to answer.

    Yields:
        The API root URL, e.g. ``"http://127.0.0.1:40123"``.

    Raises:
        BadInputError: when the folder is missing or empty.
        CatalogError: when ``rustac`` is missing or the server does not come up (its stderr is
            in the message).
    """
    if port is not None and not 1 <= port <= 65535:
        raise BadInputError(
            f"--port {port} is not a TCP port; give 1-65535, or omit it for a free one"
        )
    exe = rustac_executable()
    with tempfile.TemporaryDirectory(prefix="clearcube-stac-") as tmp:
        hrefs = stage_catalog(folder, tmp)
        if port is not None and not _port_is_free(port):
            raise BadInputError(
                f"port {port} on 127.0.0.1 is in use; pick another --port or omit it"
            )
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(tmp) / "rustac.log"
        cmd = [exe, "serve", "--addr", f"127.0.0.1:{port}", *map(str, hrefs)]
        started = time.perf_counter()
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            _wait_until_up(proc, url, log_path, timeout)
            log.info("STAC API at %s up in %.2f s", url, time.perf_counter() - started)
            yield url
        finally:
            _stop(proc)


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float) -> None:
    """Poll ``url/collections`` until it answers 200; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise CatalogError(
                f"rustac serve exited with code {proc.returncode} before {url} came up: "
                f"{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/collections", timeout=2) as resp:
                # another process answering on a port rustac failed to bind is not our API
                if resp.status == 200 and proc.poll() is None:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            raise CatalogError(
                f"rustac serve did not answer at {url} within {timeout:.0f} s: {_tail(log_path)}"
            )
        time.sleep(0.05)


def _tail(log_path: Path, chars: int = 400) -> str:
    """The end of the server's output on one line (for error messages)."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return " | ".join(text[-chars:].split("\n")).strip(" |") or "(no output)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server, killing it if it does not exit promptly."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)

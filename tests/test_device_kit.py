"""The GPU machine's one prepared call (benchmarks/gpu-call.sh) has everything it imports.

That machine has torch but not clearcube's Zarr and Dask stack; scripts/device-kit downloads
the wheels it lacks. A new import in the inference path that neither the image nor the kit
holds would surface only there, after minutes of scarce device time: caught here instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "scripts" / "device-kit"


def _names(variable: str) -> set[str]:
    text = KIT.read_text()
    found = re.search(rf'^{variable}="([^"]*)"', text, flags=re.MULTILINE)
    assert found, f"{variable} not in {KIT}"
    return {_norm(n) for n in found.group(1).split()}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


LOADED = """
import importlib.metadata as md, json, sys
sys.path.insert(0, {bench!r})
import bench_gpu, bench_tile_io, synthetic_cube  # noqa: F401
import zarr  # noqa: F401
from clearcube.pipeline.inference import infer_tiles  # noqa: F401
from clearcube.pipeline.mosaic import open_mosaic  # noqa: F401
owners = md.packages_distributions()
dists = set()
for name, module in list(sys.modules.items()):
    if "site-packages" in (getattr(module, "__file__", None) or ""):
        dists.update(owners.get(name.split(".")[0], []))
print(json.dumps(sorted(dists)))
"""


def test_the_kit_and_the_image_hold_every_distribution_the_gpu_benchmarks_load() -> None:
    code = LOADED.format(bench=str(ROOT / "benchmarks"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = {_norm(d) for d in json.loads(out.stdout.splitlines()[-1])}
    assert {"zarr", "torch", "dask"} <= loaded, loaded  # the probe saw the real imports
    missing = loaded - _names("PACKAGES") - _names("DEVICE_HAS") - {"clearcube"}
    assert not missing, f"add to PACKAGES in scripts/device-kit (and pin): {sorted(missing)}"


def test_the_call_rebuilds_every_package_mapping_of_pyproject() -> None:
    import tomllib

    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    wanted = {folder for name, folder in mapping.items() if name.startswith("clearcube.")}
    script = (ROOT / "benchmarks" / "gpu-call.sh").read_text()
    linked = re.search(r"^for part in ([\w ]+); do ln -s", script, flags=re.MULTILINE)
    assert linked, "gpu-call.sh no longer links the package folders in one loop"
    assert set(linked.group(1).split()) == wanted


def test_every_kit_package_is_pinned() -> None:
    pins = {
        _norm(line.split("==")[0])
        for line in (ROOT / "scripts" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert _names("PACKAGES") <= pins, sorted(_names("PACKAGES") - pins)


def test_the_synthetic_cube_is_masked_as_the_mask_stage_would_and_tiles_fuse_three_dates(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_tile_io import cloudy_copy
        from synthetic_cube import CLEAR_CLASS, synthetic_cube
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import zarr

    from clearcube.pipeline.cube_masks import CLOUD_BIT, VALID_BIT
    from clearcube.pipeline.inference import read_tiles_inputs
    from clearcube.pipeline.tiles import plan_tiles

    cube = synthetic_cube(tmp_path / "c.zarr", edge=480, dates=4)
    group = zarr.open_group(cube, mode="r")
    scl = np.asarray(group["scl"][:])
    s2 = np.asarray(group["s2"][:])
    state = np.asarray(group["mask_state"][:])
    assert np.array_equal(np.asarray(group["cloud"][:]), scl != CLEAR_CLASS)
    assert np.array_equal(state & VALID_BIT > 0, np.all(s2 > 0, axis=1))
    assert np.array_equal(state & CLOUD_BIT > 0, scl != CLEAR_CLASS)
    assert sorted(group.attrs["clearcube_valid"]) == [0, 1, 2, 3]  # type: ignore[arg-type]
    # what the benchmarks read: every tile fuses L = 3 dates, before and after the cloud discs
    plan = plan_tiles(480, 480, tile=256, overlap=32)
    for path in (cube, cloudy_copy(cube, tmp_path / "cloudy.zarr", 256)):
        reads = read_tiles_inputs(str(path), list(plan), (0, 1, 2, 3), max_dates=3)
        assert [len(picked) for picked, _, _ in reads] == [3] * len(plan)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

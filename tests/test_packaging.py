"""The wheel carries every data file the code reads at runtime, without setuptools' warnings.

A user installs clearcube from a wheel, not from this checkout: the presets, checkpoints and
deploy configs must be inside it. Data folders without ``__init__.py`` must be listed in
``packages`` (setuptools warns and plans to stop installing them otherwise).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: repository folder -> its place in the installed package
DATA_FOLDERS = {
    "model/presets": "clearcube/model/presets",
    "model/checkpoints": "clearcube/model/checkpoints",
    "deploy/dask": "clearcube/deploy/dask",
    "deploy/slurm": "clearcube/deploy/slurm",
}


@pytest.mark.slow
def test_the_wheel_holds_every_data_file_and_builds_without_warnings(tmp_path: Path) -> None:
    # No build isolation: the build uses this environment's setuptools (no network needed).
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path), str(ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    log = build.stdout + build.stderr
    assert "absent from the `packages` configuration" not in log, log[-2000:]
    (wheel,) = tmp_path.glob("clearcube-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"{installed}/{path.name}"
        for folder, installed in DATA_FOLDERS.items()
        for path in (ROOT / folder).iterdir()
        if path.is_file()
    }
    assert expected, "the data folders are empty: the test would check nothing"
    assert sorted(expected - names) == []
    assert "clearcube/py.typed" in names

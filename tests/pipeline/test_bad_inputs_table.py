"""Every known bad input, as a user types it: a subprocess per case, exit 2, one line, no traceback.

The table holds the cases a fault battery found (issue 11) and the common ones. Each case runs
the installed ``clearcube`` console script in a fresh process, so what is checked is exactly what
a user sees: the exit code, stderr ending in one ``clearcube: error:`` line that names the
problem, no Python traceback, no library retry chatter, and an output folder that already held
something left byte for byte as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BBOX = ["--bbox", "10.05", "45.03", "10.16", "45.10"]
PERIOD = ["--start", "2024-05-01", "--end", "2024-07-31"]
EXE = str(Path(sys.executable).with_name("clearcube"))

#: (case id, argv with {tmp} placeholders, words the error line must contain)
CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "tile-7",
        ["run", *BBOX, *PERIOD, "--out", "{tmp}/o", "--tile", "7"],
        ["tile 7", "multiple of 16"],
    ),
    (
        "overlap-too-big",
        ["run", *BBOX, *PERIOD, "--out", "{tmp}/o", "--tile", "64", "--overlap", "64"],
        ["overlap 64", "--overlap 16"],
    ),
    (
        "target-malformed",
        ["run", *BBOX, *PERIOD, "--out", "{tmp}/o", "--target", "2024-13-45"],
        ["--target '2024-13-45' is not a date"],
    ),
    (
        "target-outside",
        ["run", *BBOX, *PERIOD, "--out", "{tmp}/o", "--target", "2023-01-01"],
        ["outside the period"],
    ),
    (
        "start-malformed",
        ["run", *BBOX, "--start", "May", "--end", "2024-07-31", "--out", "{tmp}/o"],
        ["--start 'May' is not a date"],
    ),
    (
        "bbox-inverted",
        ["run", "--bbox", "10.16", "45.03", "10.05", "45.10", *PERIOD, "--out", "{tmp}/o"],
        ["inverted"],
    ),
    (
        "steps-0",
        ["run", *BBOX, *PERIOD, "--out", "{tmp}/o", "--steps", "0"],
        ["steps must be >= 1"],
    ),
    (
        "pc-has-no-l1c",
        ["run", *BBOX, *PERIOD, "--out", "{tmp}/o", "--profile", "planetary-computer"],
        ["no Sentinel-2 L1C", "--mask scl"],
    ),
    ("cube-out-is-a-file", ["cube", *BBOX, *PERIOD, "--out", "{tmp}/afile"], ["is a file"]),
    (
        "serve-port-too-big",
        ["catalog", "serve", "{tmp}", "--port", "99999"],
        ["--port 99999 is not a TCP port"],
    ),
    (
        "serve-port-negative",
        ["catalog", "serve", "{tmp}", "--port", "-1"],
        ["--port -1 is not a TCP port"],
    ),
    (
        "dead-stac-url",
        ["search", *BBOX, *PERIOD, "--stac-url", "http://127.0.0.1:9", "--collections", "s2"],
        ["cannot reach the STAC API"],
    ),
    (
        "pair-days-negative",
        ["search", *BBOX, *PERIOD, "--pair-days", "-1"],
        ["--pair-days -1 is negative"],
    ),
    (
        "seams-on-a-png",
        ["seams", "--cog", "{tmp}/picture.png", "--tile", "256", "--overlap", "32"],
        ["without a map grid"],
    ),
    (
        "train-bad-yaml",
        ["train", "--config", "{tmp}/bad.yaml", "--out", "{tmp}/run"],
        ["not valid YAML at line"],
    ),
    (
        "evaluate-no-data",
        ["evaluate", "--data", "{tmp}/nothing", "--out", "{tmp}/ev"],
        ["neither 'real' nor a folder"],
    ),
    (
        "dead-scheduler",
        ["run", *BBOX, *PERIOD, "--out", "{tmp}/kept", "--scheduler", "tcp://127.0.0.1:9"],
        ["scheduler"],
    ),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    (tmp_path / "afile").write_text("not a cube\n")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "picture.png")
    (tmp_path / "bad.yaml").write_text("steps: [1,\n  bad\n")
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine\n")
    return tmp_path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(("argv", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_exit_2_and_one_line(
    workdir: Path, argv: list[str], words: list[str]
) -> None:
    before = _snapshot(workdir)
    args = [a.replace("{tmp}", str(workdir)) for a in argv]
    done = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120)
    err = done.stderr
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert done.returncode == 2, err
    assert "Traceback" not in err and "urllib3" not in err, err
    assert lines and lines[-1].startswith("clearcube: error: "), err
    assert sum(line.startswith("clearcube:") for line in lines) == 1, err
    for word in words:
        assert word in lines[-1], lines[-1]
    assert _snapshot(workdir) == before  # nothing already there was touched
    assert not (workdir / "o").exists()  # and no output folder was left behind

"""Bad input to ``clearcube run``: exit code 2, a one-line reason, and nothing overwritten.

Each case runs the CLI in-process (``main([...])``) against the embedded demo catalog. Runs that
get far enough to need a cluster use the session's (``--scheduler``), so no case starts its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearcube.pipeline.cli import main

pytestmark = pytest.mark.integration


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def run_cli(
    runs: Any, out: Path, *, checkpoint: Path | None = None, scheduler: str | None = "session",
    period: tuple[str, str] | None = None, **overrides: Any,
) -> list[str]:  # fmt: skip
    """``clearcube run`` argv for the session's region, period and settings (overridable).

    ``scheduler="session"`` points the run at the session's cluster, None at a new local one.
    """
    start, end = period or runs.period
    argv = ["run", "--bbox", *map(str, runs.region), "--start", start, "--end", end]
    argv += ["--out", str(out), "--checkpoint", str(checkpoint or runs.checkpoint)]
    argv += [f"--{k}={v}" for k, v in {**runs.args, **overrides}.items()]
    if scheduler == "session":
        scheduler = runs.client.scheduler.address
    return argv + (["--scheduler", scheduler] if scheduler else [])


def assert_one_line_error(
    capsys: pytest.CaptureFixture[str], *words: str, kind: str = "error"
) -> str:
    """The run's stderr ends with exactly one ``clearcube: {kind}:`` line naming ``words``, and
    holds no traceback (``kind``: ``error`` for bad input, ``failed`` for a failure)."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("clearcube:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert lines[-1] == errors[0] and errors[0].startswith(f"clearcube: {kind}: ")
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_no_scenes_in_the_period(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = run_cli(runs, out, period=("2019-05-01", "2019-06-30"))
    assert main(argv) == 2
    assert_one_line_error(capsys, "2019")
    assert not out.exists()  # nothing claimed: a corrected rerun may use the same folder


def test_no_clear_pixel_in_any_date(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    # 2024-05-22 is the demo's fully overcast acquisition, and the only one in these days.
    argv = run_cli(runs, out, period=("2024-05-20", "2024-05-24"))
    assert main(argv) == 2
    assert_one_line_error(capsys, "no clear pixel")
    assert not (out / "composite.tif").exists() and not (out / "mosaic.zarr").exists()


def test_checkpoint_with_other_bands(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from clearcube.model.checkpoint import save_checkpoint
    from clearcube.model.config import preset
    from clearcube.model.unet import UNet

    tiny = preset("cpu-tiny")
    bands = ("B02", "B03", "B04", "B08")
    cfg = dataclasses.replace(
        tiny, unet=dataclasses.replace(tiny.unet, in_channels=len(bands)), s2_bands=bands
    )
    torch.manual_seed(0)
    rgbn = save_checkpoint(tmp_path / "rgbn.pt", UNet(cfg.unet), cfg, step=0)
    out = tmp_path / "out"
    assert main(run_cli(runs, out, checkpoint=rgbn)) == 2
    assert_one_line_error(capsys, "B08")
    assert not out.exists()


def test_folder_of_another_run_is_left_untouched(
    tmp_path: Path, reference_run: Any, runs: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    other = tmp_path / "other"
    shutil.copytree(reference_run.out_dir, other)
    before = snapshot(other)
    argv = run_cli(runs, other, steps=3)
    assert main(argv) == 2
    assert_one_line_error(capsys, "another run", "steps")
    assert snapshot(other) == before


def test_folder_of_foreign_files_is_left_untouched(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "photos"
    (foreign / "2023").mkdir(parents=True)
    (foreign / "2023" / "beach.jpg").write_bytes(bytes(range(256)) * 4)
    (foreign / "notes.txt").write_text("keep me\n")
    before = snapshot(foreign)
    assert main(run_cli(runs, foreign)) == 2
    assert_one_line_error(capsys, "not a clearcube run")
    assert snapshot(foreign) == before


def test_scheduler_that_does_not_answer(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main(run_cli(runs, out, scheduler=f"tcp://127.0.0.1:{port}")) == 2
    elapsed = time.perf_counter() - t0
    assert_one_line_error(capsys, f"127.0.0.1:{port}")
    assert elapsed < 30, f"took {elapsed:.0f} s to give up on a closed port"
    assert not out.exists()


def test_scl_route_with_a_13_band_checkpoint_is_refused_up_front(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """L2A has no B10: a checkpoint trained on 13 L1C bands cannot run on an SCL-masked cube."""
    out = tmp_path / "out"
    assert main(run_cli(runs, out, mask="scl")) == 2
    assert_one_line_error(capsys, "B10")
    assert not out.exists()


def test_a_target_outside_the_period_is_refused(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(run_cli(runs, out, target="2023-01-01")) == 2
    assert_one_line_error(capsys, "--target", "outside")
    assert not out.exists()


def test_a_cluster_without_a_gpu_slot_is_refused_before_any_work(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inference tasks need resources={"GPU": 1}; with no such worker they would wait forever."""
    from distributed import LocalCluster

    out = tmp_path / "out"
    # In-process (inproc:// transport, no network), one worker with no resources advertised.
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        assert main(run_cli(runs, out, scheduler=cluster.scheduler_address)) == 2
    assert_one_line_error(capsys, "GPU")
    assert not out.exists()


@contextlib.contextmanager
def small_tmpfs(where: Path, *options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (root only; the test skips elsewhere)."""
    import subprocess

    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_says_so_in_one_line_and_nothing_looks_complete(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "tiny", "size=96k") as disk:
        out = disk / "out"
        assert main(run_cli(runs, out)) == 1
        line = assert_one_line_error(capsys, "no space left on the disk holding", kind="failed")
        assert str(disk) in line
        record = json.loads((out / "run.json").read_text())
        assert record["finished"] is False  # nothing looks complete
        assert not (out / "composite.tif").exists()


def test_a_read_only_output_disk_is_bad_input(
    tmp_path: Path, runs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "ro", "size=1m", "ro") as disk:
        assert main(run_cli(runs, disk / "out")) == 2
        assert_one_line_error(capsys, "read-only file system", str(disk))

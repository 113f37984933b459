"""``clearcube run --scheduler`` against a real process cluster: where every task ran.

A scheduler, one ``GPU=1`` worker and one plain worker run as separate ``dask`` processes on
127.0.0.1 (the ``dask_processes`` fixture). The CLI runs in-process against that scheduler while
the scheduler's task stream records every task; every inference task (keys ``clearcube-tile-*``)
must have run on the GPU-labelled worker, and the unrestricted work (cloud masking, assembly)
on the cluster's workers without any GPU restriction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from distributed import Client, get_task_stream

from clearcube.model.checkpoint import save_checkpoint
from clearcube.model.config import preset
from clearcube.model.unet import UNet
from clearcube.pipeline.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# A small window of the embedded demo region: 4 tiles of 64 px with 16 px overlap.
BBOX = ["10.070", "45.045", "10.083", "45.053"]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """An untrained cpu-tiny checkpoint: where tasks run does not depend on the weights."""
    torch.manual_seed(0)
    cfg = preset("cpu-tiny")
    return save_checkpoint(tmp_path / "tiny.pt", UNet(cfg.unet), cfg, step=0)


def test_inference_runs_only_on_the_gpu_worker(
    dask_processes, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [
        "run", "--bbox", *BBOX, "--start", "2024-05-01", "--end", "2024-07-31",
        "--out", str(out), "--scheduler", dask_processes.scheduler,
        "--checkpoint", str(checkpoint), "--steps", "2", "--tile", "64", "--overlap", "16",
        "--json",
    ]  # fmt: skip
    with Client(dask_processes.scheduler, timeout=10) as client:
        names = {
            w["name"]: addr for addr, w in client.scheduler_info(n_workers=-1)["workers"].items()
        }
        gpu = names[dask_processes.gpu_worker]
        with get_task_stream(client) as stream:
            assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert Path(result["cog_path"]).is_file()

    tile_tasks = [t for t in stream.data if str(t["key"]).startswith("clearcube-tile-")]
    other_tasks = [t for t in stream.data if not str(t["key"]).startswith("clearcube-tile-")]
    assert len(tile_tasks) == result["tiles"]["computed"] == result["tiles"]["total"] > 1
    assert {t["worker"] for t in tile_tasks} == {gpu}
    # Masking and assembly carry no GPU restriction: they ran, on this cluster's workers.
    assert other_tasks
    assert {t["worker"] for t in other_tasks} <= set(names.values())

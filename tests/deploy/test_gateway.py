"""deploy/gateway/values.yaml: the cluster-options code run with dask-gateway-server's own classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("dask_gateway_server")

from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig
from dask_gateway_server.options import Options
from traitlets.config import Config

from clearcube.deploy.config import CONTAINER_PATH

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "values.yaml"


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _gateway_config() -> Config:
    """Run every extraConfig block the way the chart does: in key order, with a config ``c``."""
    c = Config()
    for key, code in sorted(_values()["gateway"]["extraConfig"].items()):
        exec(compile(code, f"values.yaml:extraConfig.{key}", "exec"), {"c": c})
    return c


def _cluster_config(request: dict[str, Any]) -> KubeClusterConfig:
    options = _gateway_config().Backend.cluster_options
    assert isinstance(options, Options)
    settings = options.get_configuration(options.parse_options(request), None)
    unknown = set(settings) - set(KubeClusterConfig.class_trait_names())
    assert not unknown, f"not KubeClusterConfig settings: {unknown}"
    return KubeClusterConfig(**settings)  # traitlets validate every value's type


def _resources(cmd: list[str]) -> str:
    return cmd[cmd.index("--resources") + 1]


def test_values_parse_and_point_workers_at_the_shared_settings() -> None:
    backend = _values()["gateway"]["backend"]
    assert backend["environment"]["DASK_CONFIG"] == CONTAINER_PATH
    assert backend["worker"]["threads"] == 1
    assert backend["image"]["name"] == "clearcube-gpu"


def test_options_define_gpu_image_memory_and_cores() -> None:
    options = _gateway_config().Backend.cluster_options
    fields = {spec["field"] for spec in options.get_specification()}
    assert {"worker_gpus", "image", "worker_memory", "worker_cores"} <= fields


def test_default_cluster_is_one_gpu_one_thread_one_model_slot() -> None:
    config = _cluster_config({})
    assert config.worker_cmd[:2] == ["dask", "worker"]
    assert _resources(config.worker_cmd) == "GPU=1"
    assert config.worker_threads == 1
    assert config.worker_extra_container_config["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert config.worker_extra_pod_config["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert config.image.startswith("clearcube-gpu:")
    assert config.worker_memory == 16 * 2**30
    assert _gateway_config().KubeClusterConfig.scheduler_cmd == ["dask", "scheduler"]


def test_cpu_cluster_keeps_the_model_slot_without_asking_for_a_gpu() -> None:
    config = _cluster_config({"worker_gpus": 0, "worker_memory": 8, "worker_cores": 2})
    assert config.image.startswith("clearcube-cpu:")
    assert "nvidia.com/gpu" not in config.worker_extra_container_config["resources"]["limits"]
    assert _resources(config.worker_cmd) == "GPU=1"
    assert (config.worker_cores, config.worker_memory) == (2, 8 * 2**30)


def test_options_refuse_out_of_range_and_unknown_requests() -> None:
    options = _gateway_config().Backend.cluster_options
    with pytest.raises(ValueError):
        options.parse_options({"worker_gpus": 2})
    with pytest.raises(ValueError, match="Unknown fields"):
        options.parse_options({"gpus": 1})

"""deploy/docker: the Dockerfiles, parsed (no Docker engine here), against the package they ship.

A small parser splits each Dockerfile into instructions (continuations joined, comments
dropped) and resolves ``ARG`` defaults, so the checks read what ``docker build`` would use.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import clearcube
from clearcube.deploy.config import CONTAINER_PATH

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case), raw arguments and stage index."""

    keyword: str
    args: str
    stage: int


def parse(path: Path) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining ``\\`` continuations and dropping comments."""
    instructions: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), stage))
    assert not pending, f"{path.name} ends inside a line continuation"
    return instructions


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """Every ``ARG NAME=default`` (the last default wins, as each stage redeclares its own)."""
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            name, value = ins.args.split("=", 1)
            defaults[name] = value
    return defaults


def expand(text: str, defaults: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m[1] or m[2], m[0]), text)


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def exec_form(ins: Instruction) -> list[str]:
    value = json.loads(ins.args)
    assert isinstance(value, list), f"{ins.keyword} must use the exec (JSON array) form"
    return [str(v) for v in value]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context drops ``path``, with .dockerignore's last-match-wins rule."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or fnmatch.fnmatch(path, pattern):
            excluded = not negate
    return excluded


def dockerignore(name: str) -> list[str]:
    lines = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


DOCKERFILES = ["Dockerfile.gpu", "Dockerfile.cpu"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_versions_are_pinned_to_the_package_and_the_tested_torch(name: str) -> None:
    instructions = parse(DOCKER / name)
    defaults = arg_defaults(instructions)
    assert defaults["CLEARCUBE_VERSION"] == clearcube.__version__
    assert defaults["TORCH_VERSION"] == torch.__version__.split("+")[0]
    runs = " ".join(expand(i.args, defaults) for i in instructions if i.keyword == "RUN")
    assert f'"torch=={torch.__version__.split("+")[0]}"' in runs
    assert "clearcube[" in runs and f"]=={clearcube.__version__}" in runs


def test_gpu_image_is_cuda_runtime_python_311_with_the_gpu_extra() -> None:
    instructions = parse(DOCKER / "Dockerfile.gpu")
    defaults = arg_defaults(instructions)
    base = expand(final_stage(instructions)[0].args, defaults)
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-(cudnn-)?runtime-ubuntu\d\d\.04( AS \w+)?", base)
    assert defaults["PYTHON_VERSION"] == "3.11"
    assert "/whl/cu12" in defaults["TORCH_INDEX"]
    runs = " ".join(expand(i.args, defaults) for i in instructions if i.keyword == "RUN")
    assert "clearcube[gpu," in runs


def test_cpu_image_is_python_311_with_cpu_torch() -> None:
    instructions = parse(DOCKER / "Dockerfile.cpu")
    defaults = arg_defaults(instructions)
    assert defaults["PYTHON_IMAGE"].startswith("python:3.11-")
    assert defaults["TORCH_INDEX"].endswith("/whl/cpu")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_a_non_root_user_with_the_shared_dask_settings(name: str) -> None:
    final = final_stage(parse(DOCKER / name))
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert f"DASK_CONFIG={CONTAINER_PATH}" in env
    copies = [i.args.split() for i in final if i.keyword == "COPY" and "--from" not in i.args]
    assert ["deploy/dask/distributed.yaml", CONTAINER_PATH] in copies


@pytest.mark.parametrize("name", DOCKERFILES)
def test_checkpoints_folder_comes_from_a_build_argument(name: str) -> None:
    instructions = parse(DOCKER / name)
    defaults = arg_defaults(instructions)
    copies = [i.args for i in final_stage(instructions) if i.keyword == "COPY"]
    assert "${CHECKPOINT_DIR}/ /opt/clearcube/checkpoints/" in copies
    assert (ROOT / defaults["CHECKPOINT_DIR"]).is_dir()


def test_gpu_entrypoint_is_a_one_thread_worker_with_one_gpu_slot() -> None:
    final = final_stage(parse(DOCKER / "Dockerfile.gpu"))
    (entrypoint,) = [exec_form(i) for i in final if i.keyword == "ENTRYPOINT"]
    assert entrypoint[:2] == ["dask", "worker"]
    assert entrypoint[entrypoint.index("--nthreads") + 1] == "1"
    assert entrypoint[entrypoint.index("--resources") + 1] == "GPU=1"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copied_context_path_exists_and_is_sent(name: str) -> None:
    instructions = parse(DOCKER / name)
    defaults = arg_defaults(instructions)
    patterns = dockerignore(name)
    for ins in instructions:
        if ins.keyword != "COPY" or ins.args.startswith("--from"):
            continue
        *sources, _ = expand(ins.args, defaults).split()
        for source in sources:
            path = source.rstrip("/")
            assert (ROOT / path).exists(), f"{name}: COPY {source} is not in the repository"
            assert not ignored(path, patterns), f"{name}: COPY {source} is dropped by dockerignore"


def test_dockerignore_sends_sources_and_drops_the_rest() -> None:
    patterns = dockerignore("Dockerfile.gpu")
    assert patterns == dockerignore("Dockerfile.cpu")
    assert not ignored("pipeline/cli.py", patterns)
    assert not ignored("deploy/docker/checkpoints/model.pt", patterns)
    assert ignored(".venv/bin/python", patterns)
    assert ignored("model/__pycache__/unet.cpython-311.pyc", patterns)

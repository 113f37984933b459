"""deploy/kubernetes against the Dask operator's own CRD schemas and the pipeline's GPU requests.

The CRDs come from the installed dask-kubernetes package (the Helm chart's ``crds/`` folder).
Kubernetes silently *prunes* fields a structural schema does not list, so a misspelt field
would vanish on ``kubectl apply``; the validator here makes every object schema that lists its
properties strict (``additionalProperties: false``) to catch exactly that.
"""

from __future__ import annotations

import copy
import functools
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")
dask_kubernetes = pytest.importorskip("dask_kubernetes")

from clearcube.deploy.config import CONFIGMAP_NAME, CONTAINER_PATH  # noqa: E402

KUBE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
CRDS = (
    Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
)


def _strict(schema: Any) -> Any:
    """Copy of an OpenAPI v3 schema where objects with listed properties refuse unknown keys."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd_validators() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> a jsonschema validator for the CRD's strict openAPIV3Schema."""
    validators: dict[tuple[str, str], Any] = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            # apiVersion/kind/metadata are the API server's, not in the CRD's schema.
            for key in ("apiVersion", "kind", "metadata"):
                schema["properties"].setdefault(key, {})
            cls = jsonschema.validators.validator_for(schema)
            validators[(f"{group}/{version['name']}", kind)] = cls(schema)
    return validators


def _documents() -> dict[str, list[dict[str, Any]]]:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    return {
        name: [d for d in yaml.safe_load_all((KUBE / name).read_text()) if d]
        for name in kustomization["resources"]
    }


def _by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for docs in _documents().values() for d in docs if d["kind"] == kind]
    return doc


def _worker_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod_spec["containers"] if c["name"] == "worker"]
    return container


def _option(args: list[str], flag: str) -> str | None:
    """Value of ``--flag VALUE`` or ``--flag=VALUE`` in an argument list, None if absent."""
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    return None


def _resources(args: list[str]) -> dict[str, float]:
    """Parse ``--resources "GPU=1 FOO=2"`` the way ``dask worker`` does."""
    value = _option(args, "--resources") or ""
    pairs = [item.split("=") for item in shlex.split(value.replace(",", " "))]
    return {name: float(amount) for name, amount in pairs}


def test_kustomization_lists_files_that_exist_and_parse() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    for name in kustomization["resources"]:
        docs = [d for d in yaml.safe_load_all((KUBE / name).read_text()) if d]
        assert docs, f"{name} holds no manifest"
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), name
    images = {i["name"] for i in kustomization.get("images", [])}
    used = {
        c["image"].split(":")[0]
        for docs in _documents().values()
        for d in docs
        for c in _containers(d)
    }
    assert used <= images, f"images {used - images} not overridable in kustomization.yaml"


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pods = [spec.get("worker", {}).get("spec"), spec.get("scheduler", {}).get("spec")]
    return [c for pod in pods if pod for c in pod.get("containers", [])]


def test_every_operator_manifest_validates_against_its_crd() -> None:
    validators = _crd_validators()
    assert ("kubernetes.dask.org/v1", "DaskCluster") in validators
    checked = 0
    for name, docs in _documents().items():
        for doc in docs:
            key = (doc["apiVersion"], doc["kind"])
            if key[0].startswith("kubernetes.dask.org/"):
                errors = sorted(validators[key].iter_errors(doc), key=str)
                assert not errors, f"{name}: {[e.message for e in errors]}"
                checked += 1
    assert checked == 2  # the DaskCluster and the GPU DaskWorkerGroup


def test_the_strict_validator_catches_a_misspelt_field() -> None:
    validators = _crd_validators()
    cluster = copy.deepcopy(_by_kind("DaskCluster"))
    cluster["spec"]["worker"]["replica"] = 3  # not `replicas`: Kubernetes would drop it
    assert not validators[("kubernetes.dask.org/v1", "DaskCluster")].is_valid(cluster)
    del cluster["spec"]["worker"]["replica"]
    del cluster["spec"]["scheduler"]["service"]  # required by the CRD
    assert not validators[("kubernetes.dask.org/v1", "DaskCluster")].is_valid(cluster)


def test_gpu_worker_group_matches_what_the_pipeline_requests() -> None:
    group = _by_kind("DaskWorkerGroup")
    cluster = _by_kind("DaskCluster")
    assert group["spec"]["cluster"] == cluster["metadata"]["name"]
    pod = group["spec"]["worker"]["spec"]
    worker = _worker_container(pod)
    args = [*worker.get("command", []), *worker["args"]]
    assert args[:2] == ["dask", "worker"]
    # Inference tasks are submitted with resources={"GPU": 1}: one slot per worker, one thread.
    assert _resources(args) == {"GPU": 1.0}
    assert _option(args, "--nthreads") == "1"
    limits = worker["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["nodeSelector"]


def test_cpu_worker_group_never_takes_inference_tasks() -> None:
    worker = _worker_container(_by_kind("DaskCluster")["spec"]["worker"]["spec"])
    args = [*worker.get("command", []), *worker["args"]]
    assert _resources(args) == {}
    assert "nvidia.com/gpu" not in worker["resources"].get("limits", {})


def test_every_container_reads_the_shared_dask_settings() -> None:
    configmap = _by_kind("ConfigMap")
    assert configmap["metadata"]["name"] == CONFIGMAP_NAME
    for name, docs in _documents().items():
        for doc in docs:
            for container in _containers(doc):
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                assert env.get("DASK_CONFIG") == CONTAINER_PATH, (name, container["name"])
                mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
                assert str(Path(CONTAINER_PATH).parent) == mounts.get("dask-config")
            spec = doc.get("spec", {})
            pod_specs = [spec.get(k, {}).get("spec", {}) for k in ("worker", "scheduler")]
            for pod in pod_specs:
                if pod:
                    volumes = {v["name"]: v for v in pod["volumes"]}
                    assert volumes["dask-config"]["configMap"]["name"] == CONFIGMAP_NAME

"""clearcube: cloud-free Sentinel-2 composites from Sentinel-1/2 time series.

The distribution is split into the folders of the repository root, installed under this one
namespace (see pyproject.toml):

- ``clearcube.catalogs`` (``catalogs/``): STAC search, scene records, the embedded demo catalog.
- ``clearcube.pipeline`` (``pipeline/``): cubes, masking, tiling, distributed inference, COGs, CLI.
- ``clearcube.model`` (``model/``): the SeqDMs diffusion model, samplers, training, evaluation.
- ``clearcube.deploy`` (``deploy/``): Dask cluster definitions and the local-cluster helpers.

This root module holds only what every part shares: the version, the error types and the cube
attribute that both the pipeline (which writes it) and the model's fit (which reads it) know.
"""

from __future__ import annotations

from clearcube.errors import (
    AssetReadError,
    BadInputError,
    CatalogError,
    CheckpointMismatchError,
    ClearcubeError,
    missing_dependency,
)

__version__ = "0.1.0"

#: Attribute of a clearcube cube: ``{mask method: [time indices]}``, the dates whose stored
#: ``cloud`` variable that method produced (the others hold no mask yet).
CUBE_MASK_ATTR = "clearcube_mask"

__all__ = [
    "CUBE_MASK_ATTR",
    "AssetReadError",
    "BadInputError",
    "CatalogError",
    "CheckpointMismatchError",
    "ClearcubeError",
    "__version__",
    "missing_dependency",
]

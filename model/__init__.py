"""clearcube.model: the SeqDMs diffusion model, its training, fitting and evaluation.

``fit`` (fine-tune a checkpoint on your own cube, :mod:`clearcube.model.fitting`) is importable
from here; the rest lives in the submodules (``unet``, ``samplers``, ``seqtis``, ``train``,
``fill``...).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FitResult", "fit"]


def __getattr__(name: str) -> Any:
    # Lazy: importing clearcube.model must not pull torch for the CLI's light commands.
    if name in __all__:
        from clearcube.model import fitting

        return getattr(fitting, name)
    raise AttributeError(name)

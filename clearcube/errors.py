"""The one exception hierarchy of clearcube (STYLE.md rule 17).

Every message is one line that says what was wrong and what to do about it. The CLI maps
:class:`BadInputError` to exit code 2 and any other :class:`ClearcubeError` to exit code 1.
"""

from __future__ import annotations


class ClearcubeError(Exception):
    """Base of every error clearcube raises on purpose."""


class BadInputError(ClearcubeError, ValueError):
    """The user asked for something that cannot work (bad bbox, no items, wrong bands...)."""


class CatalogError(ClearcubeError):
    """A STAC API could not be reached or answered something unusable."""


class AssetReadError(ClearcubeError):
    """A raster asset could not be read after retries; the message names the asset."""


class CheckpointMismatchError(BadInputError):
    """A checkpoint does not fit the data (bands, channels) or is not a clearcube checkpoint."""


def missing_dependency(package: str, extra: str) -> ImportError:
    """Return the ImportError to raise when an optional dependency is absent (STYLE.md rule 26).

    Args:
        package: the import name that failed.
        extra: the clearcube extra that provides it, e.g. ``"gpu"``.
    """
    return ImportError(
        f"{package} is not installed; install it with: pip install 'clearcube[{extra}]'"
    )

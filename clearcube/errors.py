"""The one exception hierarchy of clearcube (STYLE.md rule 17).

Every message is one line that says what was wrong and what to do about it. The CLI maps
:class:`BadInputError` to exit code 2 and any other :class:`ClearcubeError` to exit code 1.
"""

from __future__ import annotations

import logging
import re


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


_SIGNED_QUERY = re.compile(r"(?P<url>(?:https?|s3|gs|az)://[^\s?'\"<>]+)\?[^\s'\"<>]*")


def redact(text: str) -> str:
    """``text`` with the query string of every URL in it replaced by ``?<redacted>``.

    Signed hrefs (Planetary Computer SAS tokens ``?st=...&sig=...``, AWS presigned
    ``X-Amz-Signature``) are credentials: no error, log line or output of clearcube shows them.
    """
    return _SIGNED_QUERY.sub(lambda m: f"{m.group('url')}?<redacted>", text)


def install_log_redaction() -> None:
    """Make every log record of this process pass through :func:`redact` (idempotent).

    Libraries below clearcube log the hrefs they fail on (odc-loader: "Failed to load URL"), so
    a filter on clearcube's own loggers is not enough; the record factory sees every record.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "clearcube_redacts", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to logging to report
            return record
        if "://" in message and "?" in message:
            record.msg, record.args = redact(message), None
        if record.exc_info:  # a traceback quotes the exception's message, hrefs and all
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    factory.clearcube_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)

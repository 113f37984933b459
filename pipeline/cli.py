"""The ``clearcube`` console script: one parser, subcommands registered by their own modules.

Each command lives beside the code it drives and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` to a function ``(args) -> int``. Command modules import heavy
libraries (torch, odc-stac, dask) inside their functions so that ``clearcube --help`` and
``clearcube search`` stay fast.

Exit codes (DESIGN.md): 0 success, 2 bad input (one-line reason on stderr), 1 failure.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from clearcube import BadInputError, ClearcubeError, __version__
from clearcube.errors import install_log_redaction, redact

# Modules that register subcommands, in the order they appear in ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "clearcube.catalogs.cli",  # search, catalog serve, catalog demo-data
    "clearcube.pipeline.cube_cli",  # cube
    "clearcube.pipeline.run_cli",  # run, demo
    "clearcube.pipeline.quality_cli",  # seams
    "clearcube.model.train_cli",  # train
    "clearcube.model.distill_cli",  # distill
    "clearcube.model.fit_cli",  # fit
    "clearcube.model.evaluate_cli",  # evaluate
)

log = logging.getLogger("clearcube")


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser from every module in :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="clearcube",
        description="Cloud-free Sentinel-2 composites from Sentinel-1/2 time series.",
    )
    parser.add_argument("--version", action="version", version=f"clearcube {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module: surface it
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return the exit code (tests call this directly)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad flags, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()
    if args.verbose < 2:  # urllib3's retry chatter says nothing the final one-line error does not
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BadInputError as exc:
        print(f"clearcube: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional dependency (missing_dependency gives the install line)
        print(f"clearcube: error: {exc}", file=sys.stderr)
        return 2
    except ClearcubeError as exc:
        print(f"clearcube: failed: {redact(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permission denied, read-only output (RasterioIOError too)
        code, message = describe_os_error(exc, getattr(args, "out", None))
        print(
            f"clearcube: {'error' if code == 2 else 'failed'}: {redact(message)}", file=sys.stderr
        )
        return code
    except KeyboardInterrupt:
        print("clearcube: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception:  # a bug or an unforeseen library error: the traceback, minus any token
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1


def describe_os_error(exc: OSError, out: object = None) -> tuple[int, str]:
    """``(exit code, one line)`` for an operating-system error while a command ran.

    A full disk is a failure (1); a folder the user cannot write to is their input (2). The
    path is the error's own, else the command's ``--out``.
    """
    where = exc.filename or (f"--out {out}" if out is not None else "the output")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if exc.errno == errno.ENOSPC or "No space left" in text:
        return 1, (
            f"no space left on the disk holding {where} ({text}); free space or pass an --out "
            "on a disk with room, then rerun the same command to resume"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return 2, f"permission denied writing {where}; pass an --out you can write to"
    if exc.errno == errno.EROFS or "Read-only file system" in text:
        return 2, f"{where} is on a read-only file system; pass an --out on a writable disk"
    return 1, f"{text} ({where}); check the path and the disk"


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())

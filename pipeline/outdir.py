"""The output folder of a run: who owns it (an OS lock) and what run it holds (``run.json``).

A folder is claimed only by the run whose record it holds (or when empty), so a rerun with the
same arguments resumes and any other run is refused before anything is written; the record is
written to a temporary name and renamed, so it is never half-written.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clearcube import __version__
from clearcube.errors import BadInputError

log = logging.getLogger(__name__)

#: The run's record in its output folder.
RUN_FILE = "run.json"
#: The lock file in an output folder: held (``flock``) by the run that owns the folder.
LOCK_FILE = ".clearcube.lock"


@contextmanager
def output_lock(out: Path, lock_path: Path | None = None) -> Iterator[None]:
    """Own ``out`` for the ``with`` block.

    An OS-level exclusive lock on ``out/.clearcube.lock`` (or on ``lock_path``, e.g. beside a
    Zarr store that must hold nothing else).

    The kernel drops the lock when its process dies, so a crashed run leaves no stale lock; the
    file's text (pid, host, start time) only names the holder in the error.

    Raises:
        BadInputError: another process holds the lock, or ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file; pass a folder")
    if lock_path is None:
        out.mkdir(parents=True, exist_ok=True)
        lock_path = out / LOCK_FILE
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise BadInputError(
            f"--out {out} is in use by a running clearcube ({holder}); wait for it to finish "
            "or choose another folder"
        ) from None
    os.ftruncate(fd, 0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}".encode(), 0)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def claim_output_dir(out: Path, record: dict[str, Any]) -> Path:
    """Create ``out`` or reopen it for the same run; refuse another run's folder.

    Raises:
        BadInputError: ``out`` is a file, holds another run, or holds files that are not a run's.
    """
    check_output_dir(out, record)
    out.mkdir(parents=True, exist_ok=True)
    atomic_json(out / RUN_FILE, {"clearcube": __version__, "options": record, "finished": False})
    return out


def check_output_dir(out: Path, record: dict[str, Any]) -> None:
    """Refuse (without writing anything) a folder that is a file, another run's, or foreign.

    Raises:
        BadInputError: as :func:`claim_output_dir`.
    """
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file; pass a folder")
    args = json.loads(json.dumps(record, default=str))  # as run.json holds it
    stored = out / RUN_FILE
    if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        if not stored.is_file():
            raise BadInputError(
                f"--out {out} holds files that are not a clearcube run; choose an empty folder"
            )
        found = json.loads(stored.read_text()).get("options")
        if found != args:
            changed = sorted(
                k for k in set(args) | set(found or {}) if (found or {}).get(k) != args.get(k)
            )
            missing = [k for k in changed if k not in (found or {})]
            if missing and len(missing) == len(changed):
                version = json.loads(stored.read_text()).get("clearcube", "?")
                raise BadInputError(
                    f"--out {out} holds a run of clearcube {version}, whose record lacks "
                    f"{', '.join(missing)}; delete the folder or choose another (its stores "
                    "were written by an older clearcube and cannot be resumed)"
                )
            raise BadInputError(
                f"--out {out} holds another run (different {', '.join(changed)}); "
                "choose another folder or delete it"
            )
        log.info("resuming the run in %s", out)


def write_run_record(out: Path, record: dict[str, Any], result: dict[str, Any]) -> None:
    """Mark the run finished in ``run.json`` with its result summary."""
    atomic_json(
        out / RUN_FILE,
        {"clearcube": __version__, "options": record, "finished": True, "result": result},
    )


def atomic_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to a temporary name beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)

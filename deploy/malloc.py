"""glibc malloc for the client process: large buffers in their own mappings, so memory stays flat.

The workers are tuned for compute (deploy/dask/distributed.yaml: trim at 1 GiB, mmap only above
32 MiB, so torch's buffers are reused instead of faulted in afresh). The client is the other
way round: it streams the region window by window (cube regions, mask regions, COG windows,
quicklook reads) on a handful of threads, each window a few to ~14 MB. glibc's adaptive mmap
threshold rises to the largest block freed so far (up to 32 MiB), after which those windows come
from the threads' arenas; freed, they stay there as fragments, and the client's peak grew with
the region: +46 % from 288 to 1,152 px. Serving every block of 1 MiB or more from its own
mapping (returned to the kernel on ``free``) made it +15–19 % (benchmarks/RESULTS.md, session 12).
The smaller blocks still land in one arena per thread, each keeping what its thread freed; two
arenas for the whole process took the client's peak 10–20 MiB lower at every size, growth
+11–12 % instead of +13–15 %, stage times unchanged (session 14). The workers get the same bound
from their environment (``MALLOC_ARENA_MAX``).

The setting is process-wide and stays for the life of the process, so the library never makes
it behind a caller's back: ``clearcube run`` and ``clearcube demo`` apply it at start-up (not the
training commands, whose process runs the model), and a Python script that runs
:func:`clearcube.pipeline.composite` over large regions can call :func:`stream_large_blocks`
itself, first thing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["CLIENT_ARENAS", "CLIENT_MMAP_THRESHOLD", "stream_large_blocks"]

log = logging.getLogger(__name__)

CLIENT_MMAP_THRESHOLD = 1 << 20
"""Blocks of this many bytes or more get their own mapping in the client (1 MiB)."""

CLIENT_ARENAS = 2
"""glibc arenas the client's threads share (glibc's default: 8 per core)."""

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h parameter numbers
_M_ARENA_MAX = -8


def stream_large_blocks(
    threshold: int = CLIENT_MMAP_THRESHOLD, arenas: int = CLIENT_ARENAS
) -> bool:
    """Have glibc map blocks of ``threshold`` bytes or more afresh, the rest from ``arenas`` arenas.

    Threads that already have an arena keep it, so call this first thing, before the threads.

    Returns False, changing nothing, where the C library is not glibc (musl, macOS): there the
    allocator's own policy stays.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: raises AttributeError elsewhere
    except (OSError, AttributeError, TypeError):
        log.debug("not glibc: malloc's own mmap policy stays")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_ARENA_MAX, arenas))

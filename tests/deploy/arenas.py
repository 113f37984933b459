"""Count glibc's malloc arenas after 8 threads hold a block at once (glibc only).

Imported by the tests (a worker runs :func:`arenas_after_threads` through ``client.run``, the
module pickled by value) and run as a script in a fresh interpreter:
``python tests/deploy/arenas.py default|set`` prints the count, ``set`` after clearcube's
client setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import tempfile
import threading
from pathlib import Path


def arenas_after_threads(threads: int = 8) -> int:
    """The arenas glibc has once ``threads`` threads have each held a small block at once."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    live = threading.Barrier(threads)

    def allocate() -> None:
        block = libc.malloc(4096)
        live.wait()
        libc.free(block)

    started = [threading.Thread(target=allocate) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return Path(out.name).read_text().count("<heap nr=")


if __name__ == "__main__":
    if sys.argv[1] == "set":
        from clearcube.deploy.malloc import stream_large_blocks

        assert stream_large_blocks()
    print(arenas_after_threads())

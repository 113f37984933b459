"""The client's malloc setting: blocks of 1 MiB or more come from their own mappings.

Checked in a fresh interpreter (the setting is process-wide and permanent) through glibc's own
accounting, ``mallinfo2().hblkhd``: the bytes currently in mmapped blocks.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import ctypes, ctypes.util, json, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
# Free a 24 MiB block first: glibc's adaptive threshold rises to it, so a later 3 MiB block is
# carved from the heap, the fragmentation the setting exists to avoid.
libc.free(libc.malloc(24 << 20))
if sys.argv[1] == "set":
    from clearcube.deploy.malloc import stream_large_blocks
    assert stream_large_blocks()
before = libc.mallinfo2().hblkhd
block = libc.malloc(3 << 20)
print(json.dumps({"mapped": libc.mallinfo2().hblkhd - before}))
libc.free(block)
"""


def _glibc_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}


def _arenas(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("arenas.py")), mode],
        capture_output=True, text=True, check=True, env=_glibc_env(),
    ).stdout  # fmt: skip
    return int(out.strip().splitlines()[-1])


def _mapped(mode: str) -> int:
    # glibc reads MALLOC_* at start-up; distributed's nanny puts its workers' settings into the
    # parent's environment (os.environ.update), so a test run after a local cluster inherits
    # them: a 1 GiB trim threshold keeps the freed 24 MiB at the heap's top, where the 3 MiB
    # block is then carved whatever the mmap threshold. Start the probe with glibc's defaults.
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True, text=True, check=True, env=_glibc_env(),
    ).stdout  # fmt: skip
    return int(json.loads(out.strip().splitlines()[-1])["mapped"])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="glibc malloc only (Linux)",
)
def test_large_blocks_get_their_own_mapping_once_set() -> None:
    assert _mapped("default") == 0  # the raised adaptive threshold: from the heap
    assert _mapped("set") >= 3 << 20  # its own mapping, handed back to the kernel on free


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="glibc malloc only (Linux)",
)
def test_client_threads_share_at_most_two_arenas_once_set() -> None:
    assert _arenas("default") > 2  # glibc: a new arena for each new thread, up to 8 per core
    assert _arenas("set") <= 2

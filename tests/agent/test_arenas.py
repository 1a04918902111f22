"""The agent's threads share one malloc arena (camgate/agent/arenas.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="arenas are glibc's")

# Four threads allocate at once; then glibc's own account of its arenas (malloc_info).
COUNT_ARENAS = """
import ctypes, os, sys, tempfile, threading
from camgate.agent.arenas import one_arena
if sys.argv[1] == "one":
    assert one_arena()
barrier = threading.Barrier(4)
def work():
    kept = [bytearray(4096) for _ in range(50)]  # malloc'd: larger than Python's small objects
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
path = os.path.join(tempfile.mkdtemp(), "info.xml")
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(open(path).read().count("<heap nr="))
"""


def arenas_after_four_threads(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", COUNT_ARENAS, mode], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_threads_share_the_main_arena():
    assert arenas_after_four_threads("default") > 1  # what glibc does by itself
    assert arenas_after_four_threads("one") == 1

"""The tunnel fixes glibc's malloc thresholds once per process (see uplink/heap.py)."""

from __future__ import annotations

import asyncio
import platform

import pytest

from camgate.uplink import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc has these thresholds")
def test_the_thresholds_are_fixed_once_and_stay_fixed():
    assert heap.steady_heap()
    assert heap.steady_heap()  # again: nothing to do


async def test_the_heap_is_trimmed_once_a_burst_of_changes_is_over():
    # Changes 0.1 s apart against a 0.3 s quiet time, for 0.6 s: longer than the quiet
    # time, so only a trimmer that each change pushes back stays quiet, and a margin a
    # loaded machine does not eat (a 0.05 s step against 0.1 s once let a trim in).
    trimmer = heap.HeapTrimmer(quiet=0.3)
    for _ in range(6):  # a burst: each change pushes the trim back
        trimmer.changed()
        await asyncio.sleep(0.1)
    assert trimmer.trims == 0
    await asyncio.sleep(0.45)
    assert trimmer.trims == 1
    trimmer.changed()
    trimmer.close()  # a closing relay trims nothing more
    await asyncio.sleep(0.45)
    assert trimmer.trims == 1


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc has malloc_trim")
def test_free_heap_is_given_back_to_the_kernel():
    assert heap.release_free_heap()

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
    trimmer = heap.HeapTrimmer(quiet=0.1)
    for _ in range(4):  # a burst: each change pushes the trim back
        trimmer.changed()
        await asyncio.sleep(0.05)
    assert trimmer.trims == 0
    await asyncio.sleep(0.15)
    assert trimmer.trims == 1
    trimmer.changed()
    trimmer.close()  # a closing relay trims nothing more
    await asyncio.sleep(0.15)
    assert trimmer.trims == 1


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc has malloc_trim")
def test_free_heap_is_given_back_to_the_kernel():
    assert heap.release_free_heap()

"""The tunnel fixes glibc's malloc thresholds once per process (see uplink/heap.py)."""

from __future__ import annotations

import platform

import pytest

from camgate.uplink import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc has these thresholds")
def test_the_thresholds_are_fixed_once_and_stay_fixed():
    assert heap.steady_heap()
    assert heap.steady_heap()  # again: nothing to do

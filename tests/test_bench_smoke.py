"""`bench/run.py --smoke` (CI's check of the benchmarks): every part runs, at its smallest
size, and prints all of its rows; nothing in the table failed. Its figures are not
checked: speed goals are the full run's business."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from tests.support.processes import REPO

ROWS_PER_PART = {"1": 3, "2": 2, "3": 3, "4": 3, "5": 2, "7": 6}


def test_every_part_of_the_benchmark_runs_and_prints_its_rows():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--smoke"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert not [line for line in table if "FAILED" in line]
    numbers = Counter(line.split("|")[1].strip() for line in table)
    assert {n: numbers[n] for n in ROWS_PER_PART} == ROWS_PER_PART
    assert "VXG column: " in result.stdout

"""`bench/run.py --smoke` (CI's check of the benchmarks): each part runs, at its smallest
size, and prints all of its rows; nothing in the table failed. Its figures are not
checked: speed goals are the full run's business.

CI runs the parts that start no Django process (1, 2, 4, 7: about 4 s of CPU, part 4
starting its relay twice); 3 and 5 start `camgate run` and a migrated agent, about 7 s of
CPU more, which the suite's time limit cannot take, and their paths are covered by the
end-to-end and agent tests.
`python3 bench/run.py --smoke` runs them all."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from tests.support.processes import REPO

ROWS_PER_PART = {"1": 3, "2": 2, "4": 3, "7": 6}


def test_the_benchmark_parts_run_and_print_their_rows():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--only", ",".join(ROWS_PER_PART)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert not [line for line in table if "FAILED" in line]
    numbers = Counter(line.split("|")[1].strip() for line in table)
    assert {n: numbers[n] for n in ROWS_PER_PART} == ROWS_PER_PART
    assert "VXG column: " in result.stdout

"""The benchmark's pure helpers (bench/report.py): statistics and the printed table.

Only arithmetic and formatting: no timings here (speed goals live in `bench/run.py`).
"""

from __future__ import annotations

import pytest

from bench.report import (
    MIB,
    Row,
    fmt_difference,
    fmt_mib,
    fmt_micros,
    fmt_rate,
    fmt_ratio,
    fmt_seconds,
    format_table,
    median,
    percentile,
)


def test_percentile_interpolates_between_closest_ranks():
    values = [4, 1, 3, 2]  # order does not matter
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 4
    assert percentile(values, 50) == 2.5
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert median([3, 1, 2]) == 2


@pytest.mark.parametrize("values, p", [([], 50), ([1], -1), ([1], 101)])
def test_percentile_refuses_nonsense(values, p):
    with pytest.raises(ValueError):
        percentile(values, p)


def test_units_are_always_shown():
    assert fmt_rate(200_000_000, 2.0) == "100.0 MB/s"
    assert fmt_rate(1, 0) == "n/a"
    assert fmt_seconds(0.0421) == "42 ms"
    assert fmt_seconds(3.456) == "3.46 s"
    assert fmt_micros(0.000129) == "129 µs"
    assert fmt_mib(56 * MIB + MIB // 2) == "56.5 MiB"
    assert fmt_ratio(250.0, 1000.0) == "0.25×"
    assert fmt_ratio(1.0, 0.0) == "n/a"
    assert fmt_difference(0.000129, 0.000045) == "+84 µs"
    assert fmt_difference(60 * MIB, 56 * MIB, "MiB") == "+4.0 MiB"
    assert fmt_difference(0.5, 0.75, "ms") == "-250 ms"
    with pytest.raises(ValueError):
        fmt_difference(1, 0, "furlongs")


def test_table_is_markdown_with_aligned_columns():
    table = format_table([
        Row("1", "throughput", "954 MB/s", "1152 MB/s", "0.83×"),
        Row("5", "agent RSS, a | in text", "56.2 MiB"),
    ])
    lines = table.splitlines()
    assert lines[0].startswith("| # ") and "camgate vs baseline" in lines[0]
    assert set(lines[1]) <= {"|", "-"}
    assert len({len(line) for line in lines}) == 1  # every line as wide: columns line up
    assert "a \\| in text" in lines[3]  # a pipe in a cell does not break the row
    assert lines[3].count(" — ") == 2  # missing baseline and comparison are shown as such

"""Pure helpers of the benchmark: statistics, units and the printed table (no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

MB = 1_000_000  # throughput is in MB/s, 10^6 bytes per second
MIB = 1024 * 1024  # memory is in MiB


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), interpolating linearly between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not in 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def fmt_rate(bytes_count: int, seconds: float) -> str:
    if seconds <= 0:
        return "n/a"
    return f"{bytes_count / MB / seconds:.1f} MB/s"


def fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_micros(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def fmt_mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def fmt_ratio(value: float, baseline: float) -> str:
    """``value`` as a multiple of ``baseline``: 0.25× means a quarter of it."""
    if baseline <= 0:
        return "n/a"
    return f"{value / baseline:.2f}×"


def fmt_difference(value: float, baseline: float, unit: str = "µs") -> str:
    """``value - baseline`` with its sign, in µs (from seconds) or MiB (from bytes)."""
    delta = value - baseline
    if unit == "µs":
        return f"{delta * 1e6:+.0f} µs"
    if unit == "MiB":
        return f"{delta / MIB:+.1f} MiB"
    if unit == "ms":
        return f"{delta * 1000:+.0f} ms"
    raise ValueError(f"unknown unit {unit!r}")


@dataclass(frozen=True)
class Row:
    number: str  # which benchmark (1..5), shown in the first column
    what: str
    camgate: str
    baseline: str = "—"
    versus: str = "—"  # camgate against the baseline: a ratio or a difference
    vxg: str = "—"  # the same through VXG's reference agent, where it was measured


HEADERS = ("#", "measurement", "camgate", "baseline", "camgate vs baseline", "VXG vxg-proxy-client")


def format_table(rows: Sequence[Row], headers: Sequence[str] = HEADERS) -> str:
    """A markdown table with columns padded to line up in a terminal too."""
    return format_grid(headers, [[r.number, r.what, r.camgate, r.baseline, r.versus, r.vxg][:len(headers)] for r in rows])


def format_grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``format_table`` for any columns: one list of cells a row, as many as ``headers``."""
    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row needs {len(headers)} cells")
    cells = [[c.replace("|", "\\|") for c in line] for line in [list(headers), *map(list, rows)]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]

    def line(items: list[str]) -> str:
        return "| " + " | ".join(item.ljust(width) for item, width in zip(items, widths)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(items) for items in cells[1:]]
    return "\n".join(out)

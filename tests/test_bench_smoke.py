"""The benchmarks' pure helpers: statistics and the printed tables (bench/report.py), and
the chaos run's ledger of acknowledged writes (bench/writes.py).

Only arithmetic, formatting and bookkeeping: no timings here (speed goals live in bench/).
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
    format_grid,
    format_table,
    median,
    percentile,
)
from bench.writes import Entry, Ledger


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


def test_grid_takes_any_columns_and_refuses_a_short_row():
    grid = format_grid(("kill -9 of", "kills", "back"), [["relay", "3", "4.1 s / 7.2 s"], ["web", "3", "—"]])
    lines = grid.splitlines()
    assert lines[0].startswith("| kill -9 of ") and len({len(line) for line in lines}) == 1
    assert lines[2].split("|")[1:4] == [" relay      ", " 3     ", " 4.1 s / 7.2 s "]
    with pytest.raises(ValueError):
        format_grid(("a", "b"), [["only one"]])


def _acked(ledger: Ledger, camera_id: int, mac: str, **values) -> Entry:
    entry = Entry(mac=mac, token="t")
    ledger.entries.append(entry)
    ledger.added(entry, {"camera_id": camera_id, "serial": "s0", "username": "", "http_port": 80, **values})
    return entry


def _row(camera_id: int, mac: str, serial: str = "s0", username: str = "", http_port: int = 80) -> dict:
    return {"camera_id": camera_id, "mac": mac, "serial": serial, "username": username, "http_port": http_port}


def test_ledger_finds_a_lost_add_a_lost_edit_and_an_undone_delete():
    ledger = Ledger()
    _acked(ledger, 1, "m1")
    edited = _acked(ledger, 2, "m2")
    ledger.edited(edited, "serial", "s1", answered=True)
    gone = _acked(ledger, 3, "m3")
    gone.deleted = "acked"
    verdict = ledger.check([_row(2, "m2", serial="s0"), _row(3, "m3"), _row(50, "stream")], others={50})
    assert (len(verdict.adds_missing), len(verdict.edits_lost), len(verdict.deletes_back)) == (1, 1, 1)
    assert verdict.rows_lost == 3 and verdict.strangers == []
    assert "serial is 's0', acknowledged ['s1']" in verdict.edits_lost[0]


def test_ledger_accepts_what_unanswered_writes_may_have_done_and_nothing_else():
    ledger = Ledger()
    entry = _acked(ledger, 1, "m1")
    ledger.edited(entry, "serial", "s1", answered=False)  # may or may not have happened
    ledger.edited(entry, "serial", "s2", answered=True)  # and may have overtaken this one
    ledger.edited(entry, "http_port", 81, answered=True)
    ledger.entries.append(Entry(mac="m9", token="t"))  # an add without an answer
    rows = [_row(1, "m1", serial="s1", http_port=81), _row(7, "m9")]
    verdict = ledger.check(rows, others=set())
    assert verdict.rows_lost == 0 and verdict.strangers == []
    assert ledger.check([*rows, _row(8, "who")], others=set()).strangers == ["camera 8"]
    rows[0]["http_port"] = 80  # the answered http_port edit was lost
    assert ledger.check(rows, others=set()).edits_lost

"""How the agent's reconcile passes go, kept by the agent and read at scrape time.

The agent is a separate process from the web server that serves ``/metrics``; it keeps
these few numbers in memory and hands them over on its control socket (command
``metrics``), so nothing is written to disk on every pass (an SD card on a Pi wears).
Counters restart with the agent, which Prometheus takes as a counter reset.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

# Upper bounds, in seconds, of the duration histogram's buckets (+Inf is implied).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ReconcileStats:
    started_at: float = field(default_factory=time.time)
    passes: int = 0
    errors: int = 0
    seconds_sum: float = 0.0
    last_seconds: float | None = None
    # Passes per bucket (not cumulative); the last one is +Inf.
    per_bucket: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    @contextlib.contextmanager
    def measure(self):
        """Time one pass; a pass that raises counts as an error (and still re-raises).
        A cancelled pass (the agent stopping) is not counted at all."""
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self._record(time.perf_counter() - started, failed=True)
            raise
        self._record(time.perf_counter() - started, failed=False)

    def _record(self, seconds: float, *, failed: bool) -> None:
        self.passes += 1
        self.errors += failed
        self.seconds_sum += seconds
        self.last_seconds = seconds
        index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        self.per_bucket[index] += 1

    def as_dict(self) -> dict:
        """JSON-safe: the histogram as cumulative [upper bound, count] pairs."""
        cumulative, running = [], 0
        for bound, count in zip([*BUCKETS, math.inf], self.per_bucket):
            running += count
            cumulative.append(["+Inf" if bound == math.inf else bound, running])
        return {
            "started_at": self.started_at,
            "passes": self.passes,
            "errors": self.errors,
            "seconds_sum": self.seconds_sum,
            "last_seconds": self.last_seconds,
            "buckets": cumulative,
        }

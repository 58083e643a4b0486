"""Latency statistics over the last N actions: observation received -> action published."""
from __future__ import annotations

import numpy as np


class LatencyWindow:
    """The last ``size`` latencies (nanoseconds in, microseconds out) in a ring buffer."""

    def __init__(self, size: int):
        self._values = np.zeros(size, np.float64)
        self._next, self._count = 0, 0
        self.total = 0  # every latency ever added

    def add(self, nanoseconds: int) -> None:
        self._values[self._next] = nanoseconds / 1e3
        self._next = (self._next + 1) % len(self._values)
        self._count = min(self._count + 1, len(self._values))
        self.total += 1

    def summary(self) -> dict:
        """``{"count", "p50", "p99", "max", "mean"}`` in microseconds over the window (count 0: no values)."""
        if not self._count:
            return {"count": 0}
        v = self._values[:self._count]
        p50, p99 = np.percentile(v, [50, 99])
        return {"count": int(self._count), "p50": round(float(p50), 1), "p99": round(float(p99), 1),
                "max": round(float(v.max()), 1), "mean": round(float(v.mean()), 1)}

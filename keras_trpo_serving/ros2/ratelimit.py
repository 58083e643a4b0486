"""Warnings at most once per period and kind, with a count of those held back: a sensor that
sends a bad message at 1 kHz must not flood the log (nor slow the node down writing it)."""
from __future__ import annotations

import time
from typing import Callable, Optional


class RateLimitedLog:
    """``warn(key, text)`` logs through ``emit`` unless ``key`` was logged less than ``period_s`` ago;
    the next one logged for the key says how many were held back meanwhile."""

    def __init__(self, emit: Callable[[str], None], period_s: float,
                 clock: Optional[Callable[[], float]] = None):
        self.emit, self.period_s = emit, period_s
        self.clock = clock or time.monotonic
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, key: str, text: str) -> bool:
        """Log ``text`` now if ``key`` is due; returns whether it was logged."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        self._last[key] = now
        self.emit(text + (f" ({held} more like it in the last {now - last:.1f} s)" if held else ""))
        return True

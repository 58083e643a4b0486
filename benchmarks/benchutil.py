"""Small helpers shared by the benchmark scripts, standard library only.

Only the standard library, because ``sb3_runner.py`` imports this under sb3-contrib's Python
(no TensorFlow, no keras_trpo) and ``compare.py table`` should not pay for importing TensorFlow.
"""
from __future__ import annotations

import os
import resource
import sys
from typing import Callable


def atomic_write(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: readers never see half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    binary = isinstance(data, bytes)
    with open(tmp, "wb" if binary else "w", newline=None if binary else "") as f:
        f.write(data)
    os.replace(tmp, path)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def decile_progress(label: str, total: int) -> Callable[[int, float, float], None]:
    """``report(timesteps, mean_return, wall_s)``: prints one stderr line each time another
    tenth of ``total`` steps is done, so long runs show they are alive without flooding logs."""
    done = 0

    def report(t: int, ret: float, wall: float) -> None:
        nonlocal done
        decile = min(10, 10 * t // total)
        if decile > done:
            done = decile
            print(f"[{label}] {t}/{total} steps, return {ret:.1f}, {wall:.0f} s", file=sys.stderr, flush=True)

    return report

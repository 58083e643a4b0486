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


def process_cpu_s() -> float:
    """CPU seconds (user + system) of this process, all threads, plus its reaped child processes."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def machine_cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds summed over all cores since boot, from /proc/stat; None where there is none.

    Two readings give the machine's load over the interval between them: busy / total of the
    differences is the fraction of all cores that were busy, whoever used them (niced work counts).
    """
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return (total - idle) / tick, total / tick


def episode_returns(env_id: str, act: Callable, episodes: int, seed: int) -> list[float]:
    """Undiscounted returns of ``episodes`` episodes on a fresh ``gym.make(env_id)``, episode i reset with
    ``seed + i``; ``act(observation) -> action``. The final evaluation's protocol (and the random score's)."""
    import gymnasium as gym  # lazily: both venvs have it, but importing this module should not need it

    env = gym.make(env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns

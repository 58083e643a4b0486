"""What the benchmark scripts share: running one benchmark as another's child, writing files and
figures, the machine's load and the timing loops. Run every script from the checkout's root as a
module (``python -m benchmarks.compare ...``): the checkout is then on the import path, and no
script changes that path.

Standard library only at import (NumPy, onnxruntime and matplotlib are imported by the functions
that need them), because ``sb3_runner.py`` imports this under sb3-contrib's Python (no TensorFlow,
no keras_trpo dependencies; ``python -m benchmarks.sb3_runner`` from the root) and ``compare.py
table`` should not pay for importing TensorFlow. Files are written by keras_trpo_serving/files.py,
the tree's one atomic writer, standard library only too.
"""
from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import Any, Callable, Optional

from keras_trpo_serving.files import atomic_write_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout
RESULTS = os.path.join(ROOT, "benchmarks", "results")


# ---------------------------------------------------------------- children
def module_command(python: str, module: str, *args: str) -> list[str]:
    """``python -m benchmarks.MODULE ARGS``: how a benchmark runs another (or itself) as a child
    process, under this or another Python (sb3-contrib's); run it with ``child_env()``."""
    return [python, "-m", f"benchmarks.{module}", *args]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment plus ``extra``, with the checkout first on ``PYTHONPATH``: a child's
    ``python -m benchmarks.X`` (and its keras_trpo) resolves to this checkout whatever its working
    directory, so relative paths in its arguments mean what they meant here."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def run_subcommand(argv: list[str], commands: dict[str, Callable[[list[str]], int]], usage: str) -> int:
    """``commands[argv[0]](argv[1:])``, or ``usage`` on stderr and 2 when ``argv`` names none of them."""
    if not argv or argv[0] not in commands:
        print(usage, file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


# ---------------------------------------------------------------- files
def save_figure(fig: Any, path: str, **savefig: Any) -> str:
    """A matplotlib figure as a PNG at ``path``, written atomically, then closed; ``savefig`` are
    ``Figure.savefig``'s options (``dpi``, ``bbox_inches``). Returns ``path``."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- the machine
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (ARM boards: its "Hardware" line), else what platform knows."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def machine_summary() -> str:
    """One line for a training record: ``"Linux x86_64, 2 cores, CPU MODEL"``."""
    return ", ".join(x for x in (f"{platform.system()} {platform.machine()}", f"{os.cpu_count()} cores", cpu_model())
                     if x)


def machine_details() -> dict:
    """What latency numbers were measured on: CPU model, cores, OS, Python, onnxruntime and NumPy versions."""
    import numpy as np
    import onnxruntime as ort

    return {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "onnxruntime": ort.__version__, "numpy": np.__version__}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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


def episode_returns(env_id: str, act: Callable, episodes: int, seed: int,
                    on_reset: Optional[Callable[[], None]] = None) -> list[float]:
    """Undiscounted returns of ``episodes`` episodes on a fresh ``gym.make(env_id)``, episode i reset with
    ``seed + i``; ``act(observation) -> action``, ``on_reset()`` after each reset (a recurrent policy's state).
    The final evaluation's protocol (and the random score's)."""
    import gymnasium as gym  # lazily: both venvs have it, but importing this module should not need it

    env = gym.make(env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            if on_reset is not None:
                on_reset()
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


# ---------------------------------------------------------------- latency
def space_observations(policy: Any, n: int, seed: int = 0) -> Any:
    """``[n, *obs_shape]`` float32 inputs inside an exported policy's observation space (unbounded
    dims from [-1, 1])."""
    import numpy as np

    rng = np.random.default_rng(seed)
    space = policy.observation_space
    if space.type == "Discrete":
        return rng.integers(0, space.n, size=n).astype(np.float32)
    low = np.where(np.isfinite(space.low), space.low, -1.0)
    high = np.where(np.isfinite(space.high), space.high, 1.0)
    return rng.uniform(low, high, size=(n,) + space.shape).astype(np.float32)


def timed_calls(fn: Callable[[Any], object], obs: Any, calls: int, hz: Optional[float] = None,
                late: Optional[list] = None, spin: bool = False) -> list[int]:
    """Nanoseconds of each of ``calls`` calls ``fn(obs[i % len(obs)])``: back-to-back, or one per
    tick at ``hz`` (sleeping until the tick, or busy-waiting with ``spin``). ``late`` collects how
    late each wake-up was (ns)."""
    clock = time.perf_counter_ns
    out = []
    period = int(1e9 / hz) if hz else 0
    tick = clock()
    for i in range(calls):
        o = obs[i % len(obs)]
        if period:
            tick += period
            wait = tick - clock()
            if spin:
                while clock() < tick:
                    pass
            elif wait > 0:
                time.sleep(wait / 1e9)
            elif wait < -period:  # more than a tick behind: start afresh rather than burst
                tick = clock()
        t = clock()
        fn(o)
        out.append(clock() - t)
        if period and late is not None:
            late.append(t - tick)
    return out


def interleaved(fns: dict[str, Callable], obs: Any, calls: int, block: int, hz: Optional[float] = None,
                spin: bool = False) -> dict:
    """``calls`` timed calls per function, the functions taking turns in blocks of ``block`` (so that
    drift in the machine's load hits all alike).

    Also the process's CPU time per call over each function's blocks (all threads: onnxruntime's
    pool threads spinning between calls show here, not in the call's own time)."""
    times: dict[str, list[int]] = {k: [] for k in fns}
    late: dict[str, list[int]] = {k: [] for k in fns}
    cpu = {k: 0.0 for k in fns}
    done = 0
    while done < calls:
        n = min(block, calls - done)
        for name, fn in fns.items():
            c = time.process_time()
            times[name] += timed_calls(fn, obs, n, hz, late[name], spin)
            cpu[name] += time.process_time() - c
        done += n
    return {k: {**latency_summary(v, late[k] if hz else None), "cpu_us_per_call": round(cpu[k] / len(v) * 1e6, 1)}
            for k, v in times.items()}


def latency_summary(ns: list[int], late: Optional[list[int]] = None) -> dict:
    """p50, p99, p99.9, max and mean of call times ``ns`` (nanoseconds) in microseconds; with ``late``,
    the wake-ups' lateness p50 and p99."""
    import numpy as np

    us = np.asarray(ns, np.float64) / 1000
    out = {"calls": len(us), "p50_us": round(float(np.percentile(us, 50)), 2),
           "p99_us": round(float(np.percentile(us, 99)), 2), "p99.9_us": round(float(np.percentile(us, 99.9)), 2),
           "max_us": round(float(us.max()), 1), "mean_us": round(float(us.mean()), 2)}
    if late:
        lat = np.asarray(late, np.float64) / 1000
        out["wake_late_p50_us"] = round(float(np.percentile(lat, 50)), 1)
        out["wake_late_p99_us"] = round(float(np.percentile(lat, 99)), 1)
    return out

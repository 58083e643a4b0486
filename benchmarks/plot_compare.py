"""OUT/compare_ENV.png from OUT/curves_ENV.csv: return against timesteps and against wall-clock
seconds, one line (mean over seeds) and a min-max band per implementation.

  python -m benchmarks.plot_compare ENV [--out benchmarks/results]

Seeds log at different x points (wall-clock always, timesteps if iterations differ), so each
seed's curve is interpolated linearly onto a common grid spanning the x range that all seeds of
that implementation cover. Points before the first finished episode (return NaN) are dropped.
"""
from __future__ import annotations

import argparse
import csv
import math
import os

from benchmarks.benchutil import RESULTS, save_figure

COLORS = {"keras_trpo": "tab:blue", "sb3-contrib": "tab:orange"}


def load_curves(path: str) -> dict[str, dict[str, list[tuple[float, float, float]]]]:
    """``{impl: {seed: [(timesteps, wall_s, return), ...]}}``, NaN returns dropped."""
    out: dict[str, dict[str, list]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            try:
                point = (float(r["timesteps"]), float(r["wall_s"]), float(r["return"]))
            except ValueError:
                continue
            if not math.isnan(point[2]):
                out.setdefault(r["impl"], {}).setdefault(r["seed"], []).append(point)
    return out


def band(series: list, col: int, points: int = 200):
    """Common grid over the overlap of the seeds' x ranges; mean, min and max there."""
    import numpy as np

    arrays = []
    for s in series:
        a = np.array(s, dtype=float)
        arrays.append(a[np.argsort(a[:, col], kind="stable")])
    lo, hi = max(a[0, col] for a in arrays), min(a[-1, col] for a in arrays)
    if hi < lo:  # seeds do not overlap at all: fall back to the union (interp holds the end values)
        lo, hi = min(a[0, col] for a in arrays), max(a[-1, col] for a in arrays)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    ys = np.stack([np.interp(grid, a[:, col], a[:, 2]) for a in arrays])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def plot(out: str, env_id: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = load_curves(os.path.join(out, f"curves_{env_id}.csv"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for impl in sorted(curves, key=lambda i: (i not in COLORS, list(COLORS).index(i) if i in COLORS else 0, i)):
        by_seed = curves[impl]
        color = COLORS.get(impl)
        label = f"{impl} ({len(by_seed)} seed{'s' if len(by_seed) > 1 else ''})"
        for ax, col in ((axes[0], 0), (axes[1], 1)):
            grid, mean, lo, hi = band(list(by_seed.values()), col)
            ax.plot(grid, mean, color=color, label=label, marker="o" if len(grid) == 1 else None)
            if len(by_seed) > 1:
                ax.fill_between(grid, lo, hi, color=color, alpha=0.2, linewidth=0)
    axes[0].set_xlabel("environment steps")
    axes[1].set_xlabel("wall-clock seconds of training")
    axes[0].set_ylabel("mean return of the last 100 training episodes")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right")
    fig.suptitle(f"TRPO on {env_id}: mean over seeds, band = min to max")
    fig.tight_layout()
    path = os.path.join(out, f"compare_{env_id}.png")
    return save_figure(fig, path, dpi=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("env")
    p.add_argument("--out", default=RESULTS)
    a = p.parse_args()
    print(plot(a.out, a.env))


if __name__ == "__main__":
    main()

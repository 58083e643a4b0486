"""The figure and table of the diagnostics runs (diagnose.py, sb3_diagnose.py).

  python -m benchmarks.diagnostics_plot [--dir benchmarks/results/diagnostics] [--figure PATH]

One column per env, one row per quantity (training return, policy std, KL per iteration, the KL the
normaliser's update alone causes, explained variance, advantage std), one line per arm (the folders
under --dir: in_model, vecnormalize, first_rollout, sb3-contrib, ...), seeds averaged. Prints a Markdown
table: per arm and env, the seeds, final evaluations, the training return at 500k and at the end, the
policy std at the end, and norm_kl as a fraction of the KL the update reached: at iteration 0, the mean
over iterations 1-9, and the mean after them.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import warnings

import numpy as np

from benchmarks.benchutil import RESULTS, save_figure

DEFAULT_DIR = os.path.join(RESULTS, "diagnostics")
QUANTITIES = [("mean_return", "training return (last 100 episodes)", "linear"), ("policy_std", "policy std", "linear"),
              ("kl", "KL reached by the update", "linear"), ("norm_kl", "KL from the normaliser's update", "log"),
              ("explained_variance", "explained variance", "linear"), ("adv_std", "advantage std (before normalising)", "log")]
ORDER = ["in_model", "first_rollout", "vecnormalize", "sb3-contrib"]


def load(directory: str) -> dict:
    """{arm: {env: [run, ...]}} from ARM/ENV/seed_N.json."""
    runs: dict = {}
    for path in sorted(glob.glob(os.path.join(directory, "*", "*", "seed_*.json"))):
        arm, env = path.split(os.sep)[-3:-1]
        with open(path) as f:
            runs.setdefault(arm, {}).setdefault(env, []).append(json.load(f))
    return runs


def column(run: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = run["rows"]
    return (np.array([r.get("timesteps", np.nan) for r in rows], float),
            np.array([r.get(key, np.nan) for r in rows], float))


def at(run: dict, key: str, t: float) -> float:
    ts, ys = column(run, key)
    i = int(np.searchsorted(ts, t))
    return float(ys[min(i, len(ys) - 1)])


def trailing_mean(y: np.ndarray, k: int) -> np.ndarray:
    """Mean of the last ``k`` values (fewer at the start), NaNs skipped: ``[n] -> [n]``."""
    ok = np.isfinite(y)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    n = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - k, 0)
    with np.errstate(invalid="ignore"):
        return (c[idx] - c[lo]) / (n[idx] - n[lo])


def table(runs: dict) -> str:
    lines = ["| env | arm | seeds | final eval, per seed | mean eval | training return at 500k / end | policy std at end "
             "| norm_kl / kl: iteration 0 | iterations 1-9 | after |",
             "|---|---|--:|---|--:|--:|--:|--:|--:|--:|"]
    envs = sorted({e for a in runs.values() for e in a})
    for env in envs:
        for arm in sorted(runs, key=lambda a: ORDER.index(a) if a in ORDER else 99):
            rs = runs[arm].get(env)
            if not rs:
                continue
            evals = [r["eval_mean"] for r in rs]
            mid = np.mean([at(r, "mean_return", 5e5) for r in rs])
            end = np.mean([column(r, "mean_return")[1][-1] for r in rs])
            std = np.mean([column(r, "policy_std")[1][-1] for r in rs])
            first, early, late = [], [], []
            for r in rs:  # arms without an in-model normaliser have no norm_kl: NaN, shown as "–"

                _, nk = column(r, "norm_kl")
                _, kl = column(r, "kl")
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    first.append(nk[0] / kl[0])
                    early.append(np.nanmean(nk[1:10] / kl[1:10]))
                    late.append(np.nanmean(nk[10:] / kl[10:]))
            fmt = (lambda x: "–" if not np.isfinite(x) else f"{x:.3f}")
            lines.append(f"| {env} | {arm} | {len(rs)} | {', '.join(f'{e:,.0f}' for e in evals)} | {np.mean(evals):,.0f} "
                         f"| {mid:,.0f} / {end:,.0f} | {std:.3f} | {fmt(np.mean(first))} | {fmt(np.mean(early))} "
                         f"| {fmt(np.mean(late))} |")
    return "\n".join(lines)


def plot(runs: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({e for a in runs.values() for e in a})
    fig, axes = plt.subplots(len(QUANTITIES), len(envs), figsize=(5.5 * len(envs), 2.6 * len(QUANTITIES)),
                             squeeze=False, sharex="col")
    colors = {"in_model": "C0", "first_rollout": "C2", "vecnormalize": "C1", "sb3-contrib": "C3"}
    for j, env in enumerate(envs):
        for i, (key, label, scale) in enumerate(QUANTITIES):
            ax = axes[i][j]
            for arm in sorted(runs, key=lambda a: ORDER.index(a) if a in ORDER else 99):
                rs = runs[arm].get(env)
                if not rs:
                    continue
                n = min(len(r["rows"]) for r in rs)
                ts = column(rs[0], key)[0][:n]
                ys = np.array([column(r, key)[1][:n] for r in rs])
                if np.all(np.isnan(ys)):
                    continue
                y = np.nanmean(ys, 0)
                if key in ("kl", "norm_kl", "adv_std", "explained_variance"):  # noisy per iteration: smooth
                    y = trailing_mean(y, 10)
                ax.plot(ts, np.maximum(y, 1e-7) if scale == "log" else y, color=colors.get(arm),
                        label=f"{arm} ({len(rs)} seeds)", lw=1.2)
            ax.set_yscale(scale)
            if key == "explained_variance":
                ax.set_ylim(0.8, 1.0)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0:
                ax.set_title(env)
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        axes[-1][j].set_xlabel("environment steps")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=DEFAULT_DIR)
    p.add_argument("--figure", default=os.path.join(RESULTS, "diagnostics.png"))
    a = p.parse_args(argv)
    runs = load(a.dir)
    if not runs:
        print(f"no runs under {a.dir}", file=sys.stderr)
        return 1
    print(table(runs))
    plot(runs, a.figure)
    print(f"\nfigure: {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

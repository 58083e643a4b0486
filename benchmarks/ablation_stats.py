"""The HalfCheetah ablations (ablations.sh) as a table and a figure: each arm against keras_trpo's and sb3-contrib's seeds.

  python -m benchmarks.ablation_stats [--env HalfCheetah-v5] [--steps 1000000]
                                      [--ablations-dir benchmarks/results/ablations]
                                      [--seeds-dir benchmarks/results/seeds] [--figure PATH] [--reps 50000]

An arm is a directory under --ablations-dir holding seeds.py results (ARM/keras_trpo/ENV/seed_N.json),
all run with one set of TRPOConfig overrides. The baseline is keras_trpo's ten-seed campaign in
--seeds-dir and the reference sb3-contrib's. Per arm: the seeds, the IQM and the mean of the final
evaluation returns with 95 % stratified-bootstrap intervals (rliable, as stats.py), the baseline's
IQM on the same seeds (so an arm with 5 seeds is also set against the same 5), and the probability
that a run of the arm beats a baseline run, and an sb3-contrib run (Mann-Whitney, 95 % CI).

The figure (default results/ablations_ENV.png): every seed's final return per arm with the IQM and
its interval, and the IQM learning curves with 95 % bands.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from benchmarks.benchutil import RESULTS, save_figure
from benchmarks.seedstore import learning_settings, load_records
from benchmarks.stats import (DEFAULT_SEEDS_DIR, FIGURE, curve_matrix, estimates, fixed_state, fmt_ci, improvement,
                              iqm_columns, require_rliable)

DEFAULT_ABLATIONS = os.path.join(RESULTS, "ablations")
# The arms ran with 0.1.0's defaults (obs_norm_init="identity"), so their baseline is 0.1.0's ten seeds.
DEFAULT_BASELINE = os.path.join(RESULTS, "seeds_v0.1.0")
BASELINE, REFERENCE = "keras_trpo (baseline)", "sb3-contrib"


def arm_records(records: list[dict], impl: str, env: str, steps: int) -> dict[int, dict]:
    """``{seed: record}`` of ``impl`` on ``env`` at ``steps`` requested timesteps.

    Raises ValueError if they were run with more than one learning setting (a mixed arm)."""
    out = {r["seed"]: r for r in records if (r["impl"], r["env"], r["request"]["timesteps"]) == (impl, env, steps)}
    settings = {str(sorted(learning_settings(r["request"]["overrides"]).items())) for r in out.values()}
    if len(settings) > 1:
        raise ValueError(f"{impl} {env}: seeds with different settings in one arm: {sorted(settings)}")
    return out


def collect(env: str, steps: int, ablations_dir: str, seeds_dir: str, baseline_dir: str | None = None
            ) -> dict[str, dict[int, dict]]:
    """``{arm name: {seed: record}}``: the baseline (keras_trpo in ``baseline_dir``, default ``seeds_dir``), each
    ablation arm (sorted by name), then sb3-contrib (in ``seeds_dir``)."""
    stored = load_records(seeds_dir)
    base = stored if baseline_dir is None else load_records(baseline_dir)
    arms = {BASELINE: arm_records(base, "keras_trpo", env, steps)}
    if os.path.isdir(ablations_dir):
        for name in sorted(os.listdir(ablations_dir)):
            path = os.path.join(ablations_dir, name)
            if os.path.isdir(path):
                recs = arm_records(load_records(path), "keras_trpo", env, steps)
                if recs:
                    arms[name] = recs
    arms[REFERENCE] = arm_records(stored, "sb3-contrib", env, steps)
    return {k: v for k, v in arms.items() if v}


def scores(recs: dict[int, dict], seeds=None) -> np.ndarray:
    """Final evaluation returns as rliable's ``[runs, 1]``, optionally only ``seeds``."""
    return np.array([[recs[s]["eval_mean"]] for s in sorted(recs) if seeds is None or s in seeds], dtype=float)


def table(arms: dict[str, dict[int, dict]], reps: int) -> str:
    base, ref = arms.get(BASELINE, {}), arms.get(REFERENCE, {})
    lines = ["| arm | settings | seeds | IQM [95% CI] | mean [95% CI] | baseline IQM, same seeds | "
             "P(arm > baseline) | P(arm > sb3-contrib) |", "|---|---|---|--:|--:|--:|--:|--:|"]
    est = estimates({k: scores(v) for k, v in arms.items()}, reps)
    for name, recs in arms.items():
        settings = learning_settings(next(iter(recs.values()))["request"]["overrides"])
        seeds = sorted(recs)
        (iqm, mean), ci = est[name]
        same = "–"
        common = [s for s in seeds if s in base]
        if base and name not in (BASELINE, REFERENCE) and common:
            b = scores(base, common)
            same = fmt_ci(*_iqm(b, reps)) + f" ({len(common)})"

        def p_vs(other: dict) -> str:
            if not other or other is recs:
                return "–"
            return "{:.2f} [{:.2f}, {:.2f}]".format(*improvement(scores(recs), scores(other), min(reps, 2000)))

        seed_text = f"{len(seeds)}: " + (f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1))
                                         else ",".join(map(str, seeds)))
        lines.append(f"| {name} | {', '.join(f'{k}={v}' for k, v in settings.items()) or '–'} | {seed_text} | "
                     f"{fmt_ci(iqm, *ci[:, 0])} | {fmt_ci(mean, *ci[:, 1])} | {same} | {p_vs(base)} | {p_vs(ref)} |")
    return "\n".join(lines)


def _iqm(x: np.ndarray, reps: int) -> tuple[float, float, float]:
    """IQM of ``[runs, 1]`` scores and its 95 % interval: stats.estimates' first metric."""
    point, ci = estimates({"x": x}, reps)["x"]
    return float(point[0]), float(ci[0, 0]), float(ci[1, 0])


def figure(arms: dict[str, dict[int, dict]], env: str, reps: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    library, _, _ = require_rliable()
    colors = dict(zip(arms, plt.get_cmap("tab10").colors))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.3]})
    names = list(arms)
    est = estimates({n: scores(arms[n]) for n in names}, reps)  # the table's intervals, not a second bootstrap
    for y, name in enumerate(names):
        x = scores(arms[name])[:, 0]
        point, lo, hi = est[name][0][0], est[name][1][0, 0], est[name][1][1, 0]
        left.scatter(x, np.full_like(x, y) + np.random.default_rng(y).uniform(-0.15, 0.15, x.size), s=14,
                     color=colors[name], alpha=0.7)
        left.errorbar(point, y, xerr=[[point - lo], [hi - point]], fmt="D", color="black", capsize=4, markersize=5)
    left.set_yticks(range(len(names)), [f"{n} ({len(arms[n])})" for n in names])
    left.invert_yaxis()
    left.set_xlabel("final evaluation return (dots: seeds; ◆: IQM, 95 % CI)")
    left.grid(axis="x", alpha=0.3)
    for name in names:
        rs = list(arms[name].values())
        grid, ys = curve_matrix([(r["curve"]["timesteps"], r["curve"]["return"]) for r in rs])
        point, ci = library.get_interval_estimates({name: ys[:, None, :]}, iqm_columns, reps=min(reps, 2000),
                                                   random_state=fixed_state())
        right.plot(grid, point[name], color=colors[name], label=f"{name} ({len(rs)})")
        right.fill_between(grid, ci[name][0], ci[name][1], color=colors[name], alpha=0.12, linewidth=0)
    right.set_xlabel("environment steps")
    right.set_ylabel("training return, IQM over seeds")
    right.grid(alpha=0.3)
    right.legend(loc="upper left", fontsize="small")
    fig.suptitle(f"{env}: keras_trpo ablations against its baseline and sb3-contrib")
    fig.tight_layout()
    return fig


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--ablations-dir", default=DEFAULT_ABLATIONS)
    p.add_argument("--seeds-dir", default=DEFAULT_SEEDS_DIR, help="sb3-contrib's seeds")
    p.add_argument("--baseline-dir", default=DEFAULT_BASELINE,
                   help="keras_trpo's seeds with the defaults the arms were run against (0.1.0's)")
    p.add_argument("--figure", default=None, help="default: results/ablations_ENV.png")
    p.add_argument("--reps", type=int, default=50_000)
    a = p.parse_args(argv)
    try:
        arms = collect(a.env, a.steps, a.ablations_dir, a.seeds_dir, a.baseline_dir)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    if not arms:
        p.error(f"no results for {a.env} at {a.steps:,} steps in {a.seeds_dir} or {a.ablations_dir}")
    print(table(arms, a.reps))
    path = save_figure(figure(arms, a.env, a.reps), a.figure or os.path.join(RESULTS, f"ablations_{a.env}.png"),
                       **FIGURE)
    print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

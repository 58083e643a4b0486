"""Statistics over the per-seed results of seeds.py, with rliable: the README table and the figures.

  python -m benchmarks.stats [table|plots|all] [--seeds-dir benchmarks/results/seeds]
                             [--timing benchmarks/results/summary.csv ...] [--figures benchmarks/results]
                             [--task ENV:STEPS ...] [--reps 50000]

table: per env, the IQM and the mean of the final evaluation returns over seeds with 95 %
stratified-bootstrap confidence intervals (rliable, percentile method, fixed random state, so
the same files give the same table), and the same aggregated over the envs on normalised scores
(random policy -> 0, a stated reference -> 1, from results/reference_scores.json; see
reference_scores.py), plus the probability that a keras_trpo run beats an sb3-contrib run.

The speed ratio is not taken from the seed runs (they may run several at a time, under whatever
else the machine is doing) but from a named timing set: compare.py summary.csv files (--timing;
by default results/timing/summary.csv, which run_all.sh makes on an otherwise idle machine, else
the 3-seed compare.py runs in results/summary.csv and results/halfcheetah_seeds_3-5/), using
only pairs in which both libraries ran the same seed in one compare.py invocation, one after the
other on the same machine. The table says which files and machine the ratio comes from.

plots (into --figures): seeds_profile.png, the performance profile (fraction of runs above each
normalised score, 95 % bands), seeds_intervals.png (aggregate IQM and mean with their intervals),
and seeds_curves.png, per env the IQM over seeds of the training return against environment
steps with a 95 % stratified-bootstrap band.

rliable and its dependencies are benchmark-only: pip install -r benchmarks/requirements.txt.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import warnings
from typing import Sequence

import numpy as np

from benchmarks.benchutil import RESULTS, ROOT, save_figure
from benchmarks.reference_scores import DEFAULT_PATH as REFERENCE_PATH
from benchmarks.reference_scores import load as load_references
from benchmarks.seedstore import README_TASKS, load_records, parse_task

IMPL_ORDER = ("keras_trpo", "sb3-contrib")
COLORS = {"keras_trpo": "tab:blue", "sb3-contrib": "tab:orange"}
DEFAULT_SEEDS_DIR = os.path.join(RESULTS, "seeds")
# The timing set: run_all.sh's quiet side-by-side compare.py runs if they exist, else the 3-seed runs of 2026-11-25.
DEFAULT_TIMING = [os.path.join(RESULTS, "timing", "summary.csv")]
LEGACY_TIMING = [os.path.join(RESULTS, "summary.csv"),
                 os.path.join(RESULTS, "halfcheetah_seeds_3-5", "summary.csv")]
CURVE_POINTS = 100


def fixed_state() -> np.random.RandomState:
    """The random state for one rliable bootstrap, and numpy's global one reset to match.

    rliable's StratifiedBootstrap draws its resampling indices with ``np.random.choice``, the global
    generator, and not from the ``random_state`` it is given (rliable 1.2), so without the reset
    the same files gave intervals differing in the third digit from run to run."""
    np.random.seed(0)
    return np.random.RandomState(0)


FIGURE = {"dpi": 90, "bbox_inches": "tight"}  # savefig options of every figure here (and ablation_stats.py's)


def require_rliable():
    """rliable's library, metrics and plot_utils, or a clear error saying what to install."""
    try:
        from rliable import library, metrics, plot_utils
    except ImportError as e:
        raise SystemExit(f"stats.py needs rliable ({e}); install the benchmark extras: "
                         "pip install -r benchmarks/requirements.txt") from None
    # rliable hands arch a RandomState, which arch 7 accepts with a FutureWarning on every call
    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
    return library, metrics, plot_utils


# ---------------------------------------------------------------- pure: scores
def normalise(scores: np.ndarray, random: float, reference: float) -> np.ndarray:
    """(scores - random) / (reference - random): the random policy -> 0, the reference -> 1. Any shape."""
    if reference == random:
        raise ValueError(f"reference ({reference}) equals the random score: cannot normalise")
    return (np.asarray(scores, dtype=float) - random) / (reference - random)


def final_scores(records: list[dict], tasks: Sequence[tuple[str, int]]) -> dict[str, dict[str, dict[int, float]]]:
    """``{impl: {env: {seed: eval_mean}}}`` for the records whose (env, requested timesteps) is in ``tasks``."""
    wanted = set(tasks)
    out: dict = {}
    for r in records:
        if (r["env"], r["request"]["timesteps"]) in wanted and r.get("eval_mean") is not None:
            out.setdefault(r["impl"], {}).setdefault(r["env"], {})[r["seed"]] = float(r["eval_mean"])
    return out


def score_matrix(by_env: dict[str, dict[int, float]], envs: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """``[runs, tasks]`` array over the seeds that every env in ``envs`` has (rliable's layout), and those seeds.

    Raises ValueError if an env has no seeds or no seed is common to all of them."""
    missing = [e for e in envs if not by_env.get(e)]
    if missing:
        raise ValueError(f"no seeds for {', '.join(missing)}")
    seeds = sorted(set.intersection(*(set(by_env[e]) for e in envs)))
    if not seeds:
        raise ValueError(f"no seed is common to {', '.join(envs)}")
    return np.array([[by_env[e][s] for e in envs] for s in seeds], dtype=float), seeds


def curve_matrix(curves: list[tuple[Sequence[float], Sequence[float]]], points: int = CURVE_POINTS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Seeds' learning curves on one grid: ``(grid [points], returns [runs, points])``.

    ``curves`` holds one ``(timesteps, returns)`` pair per seed; NaN/None returns (no finished episode
    yet) are dropped, the rest interpolated linearly onto ``points`` steps spanning the range every
    seed covers. Raises ValueError if a seed has no finite point or the seeds' ranges do not overlap.
    """
    cleaned = []
    for t, r in curves:
        t = np.asarray(t, dtype=float)
        r = np.array([np.nan if v is None else v for v in r], dtype=float)
        keep = np.isfinite(r)
        if not keep.any():
            raise ValueError("a seed's curve has no finished episode")
        order = np.argsort(t[keep], kind="stable")
        cleaned.append((t[keep][order], r[keep][order]))
    lo, hi = max(t[0] for t, _ in cleaned), min(t[-1] for t, _ in cleaned)
    if hi < lo:
        raise ValueError(f"the seeds' curves do not overlap ({lo:g} > {hi:g})")
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    return grid, np.stack([np.interp(grid, t, r) for t, r in cleaned])


def iqm_columns(x: np.ndarray) -> np.ndarray:
    """IQM over runs of each column: ``[runs, 1, points] -> [points]`` (25 % trimmed mean, as rliable's)."""
    from scipy.stats import trim_mean

    return np.asarray(trim_mean(x.reshape(x.shape[0], -1), 0.25, axis=0))


# ---------------------------------------------------------------- pure: timing
def timing_pairs(rows: list[dict]) -> dict[str, list[tuple[float, float, dict]]]:
    """Per env, ``(keras_trpo steps/s, sb3-contrib steps/s, keras row)`` for every seed both libraries ran in
    one compare.py invocation (same env, timesteps, seed and command line) -- one after the other."""
    by_key: dict = {}
    for r in rows:
        by_key.setdefault((r["env"], r["timesteps"], r["seed"], r["command"]), {})[r["impl"]] = r
    out: dict = {}
    for (env, _, _, _), impls in by_key.items():
        if set(IMPL_ORDER) <= set(impls):
            k, s = impls["keras_trpo"], impls["sb3-contrib"]
            out.setdefault(env, []).append((float(k["steps_per_s"]), float(s["steps_per_s"]), k))
    return out


def speed_ratio(pairs: list[tuple[float, float, dict]]) -> float:
    """keras_trpo steps/s ÷ sb3-contrib steps/s, each averaged over the pairs."""
    return float(np.mean([p[0] for p in pairs]) / np.mean([p[1] for p in pairs]))


def read_timing(paths: Sequence[str]) -> list[dict]:
    """The rows of compare.py summary.csv files; a missing file is an error naming it."""
    rows = []
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"timing set {path} does not exist (make one with compare.py, see --help)")
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def cpu_ratios(records: list[dict], tasks: Sequence[tuple[str, int]]) -> dict[str, tuple[float, int, int]]:
    """Per env, from the seed runs themselves: (median sb3-contrib CPU seconds per step ÷ median keras_trpo CPU seconds
    per step, keras seeds, sb3 seeds). CPU time is the child's whole life (``process_cpu_s``: worker processes
    included, evaluation too), which sharing the cores distorts less than wall time."""
    out = {}
    for env, steps in tasks:
        per = {}
        for i in IMPL_ORDER:
            v = [r["process_cpu_s"] / r["timesteps"] for r in records if (r["impl"], r["env"], r["request"]["timesteps"])
                 == (i, env, steps) and r.get("process_cpu_s")]
            if v:
                per[i] = v
        if len(per) == 2:
            out[env] = (float(np.median(per["sb3-contrib"]) / np.median(per["keras_trpo"])), len(per["keras_trpo"]),
                        len(per["sb3-contrib"]))
    return out


# ---------------------------------------------------------------- formatting
def fmt(x: float, scale: float) -> str:
    """A number with as many decimals as the size of ``scale`` warrants (returns: whole numbers from 100 on)."""
    a = abs(scale)
    digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 0.1 else 3
    return f"{x:,.{digits}f}"


def fmt_ci(point: float, lo: float, hi: float) -> str:
    """``point [lo, hi]`` with one precision for all three."""
    scale = max(abs(point), abs(lo), abs(hi))
    return f"{fmt(point, scale)} [{fmt(lo, scale)}, {fmt(hi, scale)}]"


# ---------------------------------------------------------------- the table
def estimates(scores: dict[str, np.ndarray], reps: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{impl: (point [2], ci [2, 2])}``: IQM and mean with 95 % stratified-bootstrap intervals (rliable)."""
    library, metrics, _ = require_rliable()
    func = lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])  # noqa: E731
    point, ci = library.get_interval_estimates(scores, func, reps=reps, random_state=fixed_state())
    return {k: (point[k], ci[k]) for k in scores}


def improvement(k: np.ndarray, s: np.ndarray, reps: int) -> tuple[float, float, float]:
    """P(a keras_trpo run > an sb3-contrib run), averaged over tasks, with its 95 % interval (rliable)."""
    library, metrics, _ = require_rliable()
    point, ci = library.get_interval_estimates({"p": [k, s]}, metrics.probability_of_improvement, reps=reps,
                                               random_state=fixed_state())
    lo, hi = np.ravel(ci["p"])
    return float(point["p"]), float(lo), float(hi)


def score_cells(mats: dict[str, np.ndarray], reps: int) -> list[str]:
    """Table cells for ``{impl: [runs, tasks]}``: IQM [CI] per impl, mean [CI] per impl (IMPL_ORDER, "–" where
    missing), then P(keras_trpo > sb3-contrib) [CI] if both are there (2,000 replications at most: slow)."""
    est = estimates(mats, reps)
    cells = [fmt_ci(est[i][0][m], *est[i][1][:, m]) if i in est else "–" for m in (0, 1) for i in IMPL_ORDER]
    p = "–"
    if all(i in mats for i in IMPL_ORDER):
        p = "{:.2f} [{:.2f}, {:.2f}]".format(*improvement(mats["keras_trpo"], mats["sb3-contrib"], min(reps, 2000)))
    return cells + [p]


def table(records: list[dict], tasks: Sequence[tuple[str, int]], references: dict, timing_rows: list[dict],
          timing_paths: Sequence[str], reps: int) -> str:
    """The Markdown results table and the lines under it."""
    scores = final_scores(records, tasks)
    steps_done = {(r["env"], r["impl"]): r["timesteps"] for r in records if (r["env"], r["request"]["timesteps"])
                  in set(tasks)}
    pairs = timing_pairs(timing_rows)
    impls = [i for i in IMPL_ORDER if i in scores]
    lines = ["| env | timesteps | seeds | " + " | ".join(f"{i} IQM [95% CI]" for i in IMPL_ORDER) + " | "
             + " | ".join(f"{i} mean [95% CI]" for i in IMPL_ORDER) + " | P(keras_trpo > sb3-contrib) | speed ratio |",
             "|---|--:|---|" + "--:|" * 6]
    for env, _ in tasks:
        per = {i: scores[i][env] for i in impls if scores[i].get(env)}
        if not per:
            continue
        cells = score_cells({i: np.array(list(v.values()), dtype=float)[:, None] for i, v in per.items()}, reps)
        ratio = "–"
        if pairs.get(env):
            timed = sorted({int(k["timesteps"]) for _, _, k in pairs[env]})
            ratio = f"{speed_ratio(pairs[env]):.2f}× ({len(pairs[env])} × {' / '.join(f'{t:,}' for t in timed)} steps)"
        steps = dict.fromkeys(steps_done.get((env, i)) for i in per)
        counts = " / ".join(str(len(per.get(i, {}))) for i in IMPL_ORDER)
        lines.append(f"| {env} | {' / '.join(f'{s:,}' for s in steps)} | {counts} | {' | '.join(cells)} | {ratio} |")
    agg_line, agg_note = aggregate_row(scores, impls, tasks, references, reps)
    if agg_line:
        lines.append(agg_line)
    lines += ["", *notes(records, tasks, references, pairs, timing_paths, agg_note)]
    return "\n".join(lines)


def normalised_matrices(scores: dict, impls: list[str], tasks: Sequence[tuple[str, int]], references: dict
                        ) -> tuple[list[str], dict[str, np.ndarray], dict[str, list[int]]]:
    """(envs, ``{impl: [runs, envs]}`` normalised scores, ``{impl: seeds}``) over the envs that every impl in
    ``impls`` has, each impl on the seeds all those envs have. Raises ValueError for an env without references."""
    envs = [e for e, _ in tasks if all(scores[i].get(e) for i in impls)]
    missing = [e for e in envs if e not in references]
    if missing:
        raise ValueError(f"no reference scores for {', '.join(missing)} in {REFERENCE_PATH}")
    mats, seeds_used = {}, {}
    for i in impls if envs else []:
        m, seeds_used[i] = score_matrix(scores[i], envs)
        mats[i] = np.stack([normalise(m[:, j], references[e]["random"], references[e]["reference"])
                            for j, e in enumerate(envs)], axis=1)
    return envs, mats, seeds_used


def aggregate_row(scores: dict, impls: list[str], tasks: Sequence[tuple[str, int]], references: dict, reps: int
                  ) -> tuple[str | None, str]:
    """The normalised aggregate over the envs that every implementation present has, on their common seeds."""
    envs, mats, seeds_used = normalised_matrices(scores, impls, tasks, references)
    if len(envs) < 2:
        return None, "no aggregate: fewer than two envs have results for every implementation present"
    counts = " / ".join(str(len(seeds_used.get(i, []))) for i in IMPL_ORDER)
    line = f"| **{len(envs)} envs, normalised** | | {counts} | {' | '.join(score_cells(mats, reps))} | |"
    note = (f"The last row aggregates {', '.join(envs)} on normalised scores, over the seeds that all of them have ("
            + "; ".join(f"{i}: {_seed_list(s)}" for i, s in seeds_used.items()) + ").")
    return line, note


def _seed_list(seeds: list[int]) -> str:
    return f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2 else \
        ",".join(map(str, seeds))


def notes(records: list[dict], tasks, references: dict, pairs: dict, timing_paths: Sequence[str], agg_note: str
          ) -> list[str]:
    """The lines under the table: what the numbers are, where they come from, and the commands."""
    used = [r for r in records if (r["env"], r["request"]["timesteps"]) in set(tasks)]
    dates = sorted({r["timing"]["started"][:10] for r in used})
    machines = sorted({r["machine"] for r in used})
    commits, versions = {}, {}
    for r in used:
        git = r.get("git") or {}
        versions.setdefault(r["impl"], set()).add(", ".join(f"{k} {v}" for k, v in sorted((r.get("versions") or {}).items())))
        if r["impl"] != "keras_trpo":
            continue  # sb3-contrib's code is its installed version, not this repository's commit
        dirty = any(p.startswith("keras_trpo") for p in git.get("dirty", []))
        commits.setdefault(r["impl"], set()).add((git.get("commit") or "?")[:8] + (" (+ uncommitted changes)" if dirty
                                                                                    else ""))
    overrides = {}
    for r in used:
        if r["request"]["overrides"]:
            overrides.setdefault(r["impl"], set()).add(str(r["request"]["overrides"]))
    ref = "; ".join(f"{e} {references[e]['random']:g} → 0, {references[e]['reference']:g} → 1"
                    for e, _ in tasks if e in references)
    timing_machines = sorted({k["machine"] for ps in pairs.values() for _, _, k in ps})
    timing_dates = sorted({k["date"] for ps in pairs.values() for _, _, k in ps})
    out = [f"Final evaluation return of each training seed (10 deterministic episodes, env seeds 10000–10009, "
           f"normalisation statistics frozen). IQM: interquartile mean over seeds; 95 % CIs: stratified bootstrap "
           f"(rliable, percentile, fixed random state). \"seeds\": keras_trpo / sb3-contrib. "
           f"P(keras_trpo > sb3-contrib): probability that a keras_trpo seed beats an sb3-contrib seed "
           f"(Mann–Whitney, averaged over envs) with its 95 % CI.",
           f"Normalised: random-policy return → 0, reference → 1 ({ref}; benchmarks/reference_scores.py says why).",
           agg_note,
           f"Seeds run {', '.join(dates)} on {'; '.join(machines)}. "
           + "; ".join(f"{i}: {' / '.join(sorted(v))}" for i, v in sorted(versions.items()))
           + "; keras_trpo code at " + ", ".join(sorted(commits.get("keras_trpo", [])))
           + (" (several commits: check with seeds.py identical that what changed between them keeps results)"
              if len(commits.get("keras_trpo", [])) > 1 else "")
           + ("; keras_trpo settings " + "; ".join(sorted(overrides.get("keras_trpo", []))) if overrides else "") + ".",
           "Speed ratio: keras_trpo steps/s ÷ sb3-contrib steps/s (training wall time, updates and compilation included) "
           "from the timing set, not the seed runs: pairs of runs of one seed made one after the other in one "
           f"compare.py invocation (shown: pairs × steps per run), from {', '.join(os.path.relpath(p, ROOT) for p in timing_paths)}"
           + (f", measured {', '.join(timing_dates)} on {'; '.join(timing_machines)}." if timing_machines else "."),
           ]
    ratios = cpu_ratios(records, tasks)
    if ratios:
        out.append("From the seed runs themselves (several at a time, so not the speed ratio; on different CPUs when "
                   "the seed lines above name two): CPU seconds per step, "
                   "sb3-contrib ÷ keras_trpo, medians over seeds, each run's whole process tree: "
                   + ", ".join(f"{e} {r:.2f}×" for e, (r, _, _) in ratios.items()) + ".")
    out += ["", "```",
            "python -m benchmarks.seeds run --impl sb3 --seeds 0-9 --jobs 2   # sb3-contrib's 40 runs (one thread each)",
            "python -m benchmarks.seeds run --impl keras_trpo --seeds 0-9 --jobs 2 \\",
            "    --set obs_norm_init=first_rollout                            # keras_trpo's 40 runs (now the default)",
            "python -m benchmarks.stats all --timing benchmarks/results/timing/summary.csv  # this table and the figures",
            "```"]
    return out


# ---------------------------------------------------------------- figures
def plots(records: list[dict], tasks: Sequence[tuple[str, int]], references: dict, figures: str, reps: int
          ) -> list[str]:
    """seeds_curves.png, seeds_profile.png and seeds_intervals.png in ``figures``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    library, metrics, plot_utils = require_rliable()
    os.makedirs(figures, exist_ok=True)
    paths = [save_figure(curves_figure(records, tasks, reps), os.path.join(figures, "seeds_curves.png"), **FIGURE)]
    scores = final_scores(records, tasks)
    impls = [i for i in IMPL_ORDER if i in scores]
    envs, mats, _ = normalised_matrices(scores, impls, tasks, references)
    if not envs:
        return paths
    hi = max(1.1, float(max(m.max() for m in mats.values())) + 0.05)
    taus = np.linspace(min(0.0, float(min(m.min() for m in mats.values()))), hi, 121)
    fixed_state()  # create_performance_profile takes no random state; it bootstraps from the global one
    profiles, cis = library.create_performance_profile(mats, taus, reps=min(reps, 2000))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, colors=COLORS, ax=ax,
                                         xlabel="normalised score τ (random → 0, reference → 1)",
                                         ylabel="fraction of runs with score > τ")
    ax.legend([plt.Line2D([], [], color=COLORS[i]) for i in impls],
              [f"{i} ({mats[i].shape[0]} seeds × {len(envs)} envs)" for i in impls], loc="lower left")
    ax.set_title(f"Performance profile over {', '.join(envs)} (95 % bands)")
    paths.append(save_figure(fig, os.path.join(figures, "seeds_profile.png"), **FIGURE))
    est = estimates(mats, reps)
    point = {i: est[i][0] for i in impls}
    ci = {i: est[i][1] for i in impls}
    fig, axes = plot_utils.plot_interval_estimates(point, ci, metric_names=["IQM", "Mean"], algorithms=impls,
                                                   colors=COLORS, xlabel="", subfigure_width=3.5, row_height=0.6)
    for ax in np.ravel(axes):  # rliable places its x label in figure coordinates, on the ticks of a short figure
        ax.set_xlabel("normalised score", fontsize="large")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
    fig.set_size_inches(fig.get_size_inches()[0], 1.2 + 0.6 * len(impls))
    fig.suptitle(f"{', '.join(envs)}: aggregate with 95 % stratified-bootstrap intervals")
    fig.tight_layout()
    paths.append(save_figure(fig, os.path.join(figures, "seeds_intervals.png"), **FIGURE))
    return paths


def curves_figure(records: list[dict], tasks: Sequence[tuple[str, int]], reps: int,
                  impls: Sequence[str] = IMPL_ORDER, colors: dict[str, str] = COLORS):
    """Per env: IQM over seeds of the training return against steps, 95 % stratified-bootstrap band, one
    curve per implementation in ``impls`` (the records' ``impl``)."""
    import matplotlib.pyplot as plt

    library, metrics, _ = require_rliable()
    n = len(tasks)
    cols = 2 if n > 1 else 1
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(6 * cols, 4 * math.ceil(n / cols)), squeeze=False)
    for ax, (env, steps) in zip(axes.flat, tasks):
        for impl in impls:
            rs = [r for r in records if (r["impl"], r["env"], r["request"]["timesteps"]) == (impl, env, steps)]
            if not rs:
                continue
            grid, ys = curve_matrix([(r["curve"]["timesteps"], r["curve"]["return"]) for r in rs])
            point, ci = library.get_interval_estimates({impl: ys[:, None, :]}, iqm_columns, reps=min(reps, 2000),
                                                       random_state=fixed_state())
            ax.plot(grid, point[impl], color=colors[impl], label=f"{impl} ({len(rs)} seeds)")
            ax.fill_between(grid, ci[impl][0], ci[impl][1], color=colors[impl], alpha=0.2, linewidth=0)
        ax.set_title(f"{env}")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("training return (last 100 episodes)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right")
        else:
            ax.text(0.5, 0.5, "no runs stored yet", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("IQM over seeds of the training return, 95 % stratified-bootstrap band")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- main
def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", choices=["table", "plots", "all"], default="all")
    p.add_argument("--seeds-dir", default=DEFAULT_SEEDS_DIR)
    p.add_argument("--timing", nargs="+", default=None, metavar="SUMMARY_CSV",
                   help="compare.py summary.csv files for the speed ratio (default: results/timing/summary.csv "
                        "if it exists, else results/summary.csv and results/halfcheetah_seeds_3-5/summary.csv)")
    p.add_argument("--figures", default=RESULTS)
    p.add_argument("--task", nargs="+", default=None, metavar="ENV:STEPS", help="default: the README's four")
    p.add_argument("--references", default=REFERENCE_PATH)
    p.add_argument("--reps", type=int, default=50_000, help="bootstrap replications (curves and profiles: ≤ 2000)")
    a = p.parse_args(argv)
    try:
        tasks = [parse_task(t) for t in a.task] if a.task else list(README_TASKS)
        records = load_records(a.seeds_dir)
        references = load_references(a.references)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    records = [r for r in records if (r["env"], r["request"]["timesteps"]) in set(tasks)]
    if not records:
        p.error(f"no seed results for {', '.join(f'{e}:{s}' for e, s in tasks)} in {a.seeds_dir}")
    if a.what in ("table", "all"):
        timing_paths = a.timing or [t for t in DEFAULT_TIMING if os.path.exists(t)] or \
            [t for t in LEGACY_TIMING if os.path.exists(t)]
        try:
            rows = read_timing(timing_paths)
        except FileNotFoundError as e:
            p.error(str(e))
        print(table(records, tasks, references, rows, timing_paths, a.reps))
    if a.what in ("plots", "all"):
        for path in plots(records, tasks, references, a.figures, a.reps):
            print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

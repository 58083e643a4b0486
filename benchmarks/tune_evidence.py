"""The evidence for ``keras-trpo tune`` (issue 21): the tuned settings' ten seeds against the zoo preset's.

  PYTHONPATH=. .venv/bin/python -m benchmarks.tune_evidence [--env Pendulum-v1] [--reps 50000]

Reads, all under the repository:

* the study: ``benchmarks/results/tune/ENV/study.journal`` (trial counts, states, the tune's wall time)
  and its ``best.yaml``;
* the tuned settings' ten seeds: ``benchmarks/results/tune/seeds/keras_trpo/ENV/seed_N.json``, made by
  ``python -m benchmarks.seeds run --impl keras_trpo --task ENV:1e5 --seeds 0-9 --out benchmarks/results/tune/seeds
  --set NAME=VALUE ...`` with best.yaml's settings (``--print-set`` prints those --set arguments);
* the zoo preset's ten seeds: ``benchmarks/results/seeds/keras_trpo/ENV`` (the README's results).

Prints both ten-seed tables (final deterministic evaluation, 10 episodes on env seeds 10000-10009,
as every seed file), their IQM and mean with 95 % stratified-bootstrap intervals (``stats.estimates``,
rliable) and P(tuned run > preset run).
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys

import numpy as np

from benchmarks.benchutil import RESULTS
from benchmarks.seedstore import load_records
from benchmarks.stats import estimates, fmt_ci, improvement

TUNE_DIR = os.path.join(RESULTS, "tune")
PRESET_SEEDS = os.path.join(RESULTS, "seeds")
TUNED_SEEDS = os.path.join(TUNE_DIR, "seeds")


def scores(seeds_dir: str, env: str, steps: int) -> dict[int, float]:
    return {r["seed"]: r["eval_mean"] for r in load_records(seeds_dir)
            if r["impl"] == "keras_trpo" and r["env"] == env and r["request"]["timesteps"] == steps}


def best_set_arguments(env: str) -> list[str]:
    """best.yaml's settings as seeds.py --set arguments: every field that differs from what seeds.py's
    children start from (the zoo's settings; n_envs=1 and n_steps=2048 too, for Pendulum)."""
    from benchmarks.compare import set_arguments
    from keras_trpo.config_file import read_config_file

    return set_arguments(env, read_config_file(os.path.join(TUNE_DIR, env, "best.yaml")).settings)


def study_summary(env: str) -> str:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(os.path.join(TUNE_DIR, env, "study.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    trials = study.trials
    by_state: dict[str, int] = {}
    for t in trials:
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
    best = study.best_trial
    return (f"study {study.study_name}: {len(trials)} trials ({', '.join(f'{v} {k.lower()}' for k, v in by_state.items())}), "
            f"first start to last end {datetime.timedelta(seconds=round(wall))}; best trial {best.number}, "
            f"score {best.value:.1f}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=float, default=1e5, help="the ten seeds' training steps (default 1e5)")
    p.add_argument("--reps", type=int, default=50_000, help="bootstrap replications")
    p.add_argument("--print-set", action="store_true", help="print best.yaml as seeds.py --set arguments and exit")
    p.add_argument("--tuned-seeds", default=TUNED_SEEDS, help=f"the tuned settings' seed files (default {TUNED_SEEDS})")
    a = p.parse_args(argv)
    if a.print_set:
        print(" ".join(f"--set {s}" for s in best_set_arguments(a.env)))
        return 0
    steps = int(a.steps)
    preset, tuned = scores(PRESET_SEEDS, a.env, steps), scores(a.tuned_seeds, a.env, steps)
    if not preset or not tuned:
        print(f"missing seed files: preset {len(preset)}, tuned {len(tuned)}", file=sys.stderr)
        return 2
    print(study_summary(a.env))
    print(f"\n{a.env}, {steps:,} steps, final evaluation (mean of 10 deterministic episodes) per seed\n")
    print("| seed | zoo preset | tuned (best.yaml) |\n|--:|--:|--:|")
    for s in sorted(set(preset) | set(tuned)):
        cell = lambda d: f"{d[s]:.1f}" if s in d else "–"  # noqa: E731
        print(f"| {s} | {cell(preset)} | {cell(tuned)} |")
    mats = {"preset": np.array(list(preset.values()))[:, None], "tuned": np.array(list(tuned.values()))[:, None]}
    est = estimates(mats, a.reps)
    print("\n| settings | seeds | IQM [95 % CI] | mean [95 % CI] |\n|---|--:|---|---|")
    for name, label in (("preset", "zoo preset"), ("tuned", "tuned")):
        point, ci = est[name]
        print(f"| {label} | {len(mats[name])} | {fmt_ci(point[0], *ci[:, 0])} | {fmt_ci(point[1], *ci[:, 1])} |")
    pi = improvement(mats["tuned"], mats["preset"], min(a.reps, 2000))
    print(f"\nP(tuned run > preset run) = {pi[0]:.2f} [{pi[1]:.2f}, {pi[2]:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

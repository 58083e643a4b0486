"""Confirm a tune study's best trials on more training seeds before any of them meets the benchmark's seeds.

  python -m benchmarks.confirm_trials set --storage STUDY.journal [--study NAME] TRIAL
  python -m benchmarks.confirm_trials run --storage STUDY.journal [--study NAME] --trials 9 3 16 \
      --seeds 200-203 --out DIR [--jobs 2]
  python -m benchmarks.confirm_trials table --out DIR [--task ENV:STEPS]

A trial's score is one training seed's final evaluation, and on a task whose last iterate swings
(CartPoleNoVel-v1: a trial scoring 500 had evaluations 67, 500, 500, 197, 500 during its run) the
study's best is often a lucky seed. ``run`` trains each listed trial's settings (the study's TRPOConfig
settings, as ``keras-trpo tune`` gave them to the trial) on further seeds disjoint from the benchmark's
0-9, through ``benchmarks.seeds`` (one record per seed, stored at once, resumable), into
``DIR/trial_N``; ``table`` ranks them by the IQM over those seeds. Only the winner then goes to the
ten-seed rule on seeds 0-9 (``benchmarks.adoption``), so the benchmark's seeds choose nothing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from benchmarks.seedstore import load_records, parse_task
from benchmarks.stats import final_scores


def open_study(storage: str, study: str | None):
    """(the Optuna study, its keras-trpo tune settings); ``study`` may be left out when the storage has one."""
    from keras_trpo.tune.study import load_study, study_names

    if study is None:
        names = study_names(storage)
        if len(names) != 1:
            raise SystemExit(f"error: {storage} holds {len(names)} studies ({', '.join(names)}): name one with --study")
        study = names[0]
    return load_study(storage, study)


def trial_set_arguments(loaded, settings, number: int) -> list[str]:
    """``--set NAME=VALUE`` arguments with which a benchmark child trains trial ``number``'s recorded config."""
    from benchmarks.compare import set_arguments

    if not 0 <= number < len(loaded.trials):
        raise SystemExit(f"error: {loaded.study_name} has trials 0-{len(loaded.trials) - 1}, not {number}")
    config = loaded.trials[number].user_attrs.get("config")
    if config is None:
        raise SystemExit(f"error: trial {number} of {loaded.study_name} has no recorded config (it never started)")
    return [arg for item in set_arguments(settings.env, config) for arg in ("--set", item)]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("set", "run"):
        s = sub.add_parser(name)
        s.add_argument("--storage", required=True, help="the study's journal file (or RDB URL)")
        s.add_argument("--study", default=None, help="study name (default: the only one in the storage)")
    sub.choices["set"].add_argument("trial", type=int)
    r = sub.choices["run"]
    r.add_argument("--trials", type=int, nargs="+", required=True)
    r.add_argument("--seeds", nargs="+", default=["200-203"])
    r.add_argument("--out", required=True)
    r.add_argument("--jobs", type=int, default=1)
    t = sub.add_parser("table")
    t.add_argument("--out", required=True)
    t.add_argument("--task", default=None, metavar="ENV:STEPS")
    a = p.parse_args(argv)
    if a.command == "set":
        print(" ".join(trial_set_arguments(*open_study(a.storage, a.study), a.trial)))
        return 0
    if a.command == "run":
        loaded, settings = open_study(a.storage, a.study)
        task = f"{settings.env}:{settings.timesteps_per_trial}"
        for number in a.trials:
            cmd = [sys.executable, "-m", "benchmarks.seeds", "run", "--impl", "keras_trpo", "--task", task,
                   "--seeds", *a.seeds, "--jobs", str(a.jobs), "--out", os.path.join(a.out, f"trial_{number}"),
                   *trial_set_arguments(loaded, settings, number)]
            print(" ".join(cmd), flush=True)
            if subprocess.run(cmd).returncode != 0:
                return 1
        return 0
    return table(a.out, a.task)


def table(out: str, task: str | None) -> int:
    from benchmarks.regression import iqm

    rows = []
    for name in sorted(n for n in os.listdir(out) if os.path.isdir(os.path.join(out, n))):  # one folder per trial
        records = load_records(os.path.join(out, name))
        tasks = [parse_task(task)] if task else sorted({(r["env"], r["request"]["timesteps"]) for r in records})
        for env, scores in final_scores(records, tasks).get("keras_trpo", {}).items():
            values = [scores[s] for s in sorted(scores)]
            rows.append((iqm(values), name, env, values))
    print("| trial | env | seeds | IQM | mean | min | per seed |")
    print("|---|---|--:|--:|--:|--:|---|")
    for value, name, env, values in sorted(rows, reverse=True):
        print(f"| {name} | {env} | {len(values)} | {value:.1f} | {sum(values) / len(values):.1f} | {min(values):.1f} "
              f"| {' / '.join(f'{v:.0f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

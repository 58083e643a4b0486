"""A cheap learning-quality regression check: a few seeds on short tasks against a bound set from the ten-seed results.

  python -m benchmarks.regression [--task CartPole-v1:1e5 Pendulum-v1:1e5] [--seeds 0-2] [--impl keras_trpo]
                                  [--reference-dir benchmarks/results/seeds] [--quantile 0.01] [--tolerance 0.05]
                                  [--out DIR] [--set NAME=VALUE ...]

For each task it trains ``--seeds`` (seeds.py's runner, so the same children and settings; into a
temporary directory unless --out) and takes the IQM of their final evaluation returns. The bound
comes from the stored ten-seed results of the same impl and task (``--reference-dir``): the
``--quantile`` of the IQM over every subset of as many stored seeds as were run (for 3 of 10: all
120), minus ``--tolerance`` times the env's random-to-reference range (reference_scores.json), so
that small numerical changes pass and a real loss of learning does not. Exit code 1 if any task's
IQM is below its bound, 2 if a bound cannot be set (no stored results for that task).

About 1-2 minutes for the default (keras_trpo, CartPole-v1 and Pendulum-v1 at 100k, 3 seeds) on
2 cores. Training is reproducible, so with unchanged code the seeds reproduce the stored ones and
the check passes; it is meant to fail when a change makes learning worse.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from typing import Sequence

import numpy as np

from benchmarks.reference_scores import DEFAULT_PATH as REFERENCE_PATH
from benchmarks.reference_scores import load as load_references
from benchmarks.seedstore import learning_settings, load_records, parse_seeds, parse_task

DEFAULT_TASKS = ["CartPole-v1:100000", "Pendulum-v1:100000"]


def iqm(x: Sequence[float]) -> float:
    """Interquartile mean (25 % trimmed mean, rliable's definition) of a 1-D sample."""
    from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(x, dtype=float), 0.25))


def subset_bound(stored: Sequence[float], k: int, quantile: float) -> float:
    """The ``quantile`` of the IQM of every ``k``-subset of ``stored`` (its sampling spread for ``k`` seeds).

    Raises ValueError if there are fewer than ``k`` stored scores or ``quantile`` is outside [0, 1]."""
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    if len(stored) < k or k < 1:
        raise ValueError(f"need at least {k} stored scores to bound {k} seeds, have {len(stored)}")
    values = [iqm(c) for c in itertools.combinations(stored, k)]
    return float(np.quantile(values, quantile))


def main(argv: list[str]) -> int:
    from benchmarks import seeds as runner

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", nargs="+", default=DEFAULT_TASKS, metavar="ENV:STEPS")
    p.add_argument("--seeds", nargs="+", default=["0-2"])
    p.add_argument("--impl", choices=["keras_trpo", "sb3"], default="keras_trpo")
    p.add_argument("--reference-dir", default=runner.DEFAULT_OUT, help="the stored ten-seed results")
    p.add_argument("--references", default=REFERENCE_PATH)
    p.add_argument("--quantile", type=float, default=0.01)
    p.add_argument("--tolerance", type=float, default=0.05, help="in units of the random-to-reference range")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary directory)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    a = p.parse_args(argv)
    impl = runner.IMPLS[a.impl]
    try:
        tasks = [parse_task(t) for t in a.task]
        seed_list = parse_seeds(a.seeds)
        references = load_references(a.references)
        stored = load_records(a.reference_dir)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    try:
        wanted = learning_settings(runner.parse_set(a.set))
    except ValueError as e:
        p.error(str(e))
    bounds = {}
    for env, steps in tasks:
        # The stored seeds may have run on worker processes: where rollouts ran does not change results.
        scores = [r["eval_mean"] for r in stored if (r["impl"], r["env"], r["request"]["timesteps"]) == (impl, env, steps)
                  and learning_settings(r["request"]["overrides"]) == wanted]
        if env not in references:
            print(f"error: no reference scores for {env} in {a.references}", file=sys.stderr)
            return 2
        try:
            q = subset_bound(scores, len(seed_list), a.quantile)
        except ValueError as e:
            print(f"error: {impl} {env}:{steps}: {e} (in {a.reference_dir}); run seeds.py first", file=sys.stderr)
            return 2
        span = references[env]["reference"] - references[env]["random"]
        bounds[(env, steps)] = (q - a.tolerance * span, q, len(scores))
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or tmp
        run_argv = ["--impl", a.impl, "--task", *a.task, "--seeds", *a.seeds, "--out", out]
        for s in a.set:
            run_argv += ["--set", s]
        code = runner.cmd_run(run_argv)
        if code not in (0, 1):
            return code
        ran = load_records(out)
    failed = False
    print()
    for (env, steps), (bound, q, n) in bounds.items():
        got = [r["eval_mean"] for r in ran if (r["impl"], r["env"], r["request"]["timesteps"]) == (impl, env, steps)
               and r["seed"] in seed_list]
        if len(got) < len(seed_list):
            print(f"FAIL {impl} {env}: only {len(got)} of {len(seed_list)} seeds finished")
            failed = True
            continue
        value = iqm(got)
        ok = value >= bound
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {impl} {env} {steps:,} steps, seeds {','.join(map(str, seed_list))}: IQM "
              f"{value:.1f} {'>=' if ok else '<'} bound {bound:.1f} (the {a.quantile:g} quantile {q:.1f} of the IQM of "
              f"{len(seed_list)} of the {n} stored seeds, minus {a.tolerance:g} x the random-to-reference range)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

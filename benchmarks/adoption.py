"""The adoption rule for a new default: a candidate's ten seeds against the current defaults' ten, per env and overall.

  python -m benchmarks.adoption --baseline DIR [DIR ...] --candidate DIR [DIR ...]
                                [--reference DIR [DIR ...] [--reference-impl NAME]]
                                [--task ENV:STEPS ... | --widened] [--reps 50000] [--preset ENV]

DIR holds seeds.py results (DIR/keras_trpo/ENV/seed_N.json). The rule (issue 17): a change becomes a
default only if it raises the normalised IQM over the four envs and lowers no env's IQM beyond that
env's interval, i.e. no env's candidate IQM is below the lower end of the baseline's 95 % interval.
Per env: the IQM of the final evaluations with 95 % stratified-bootstrap intervals (rliable, as
stats.py) of baseline, candidate and, with --reference, sb3-contrib; P(candidate > baseline). Then the
normalised aggregate and the verdict. Exit code 0 if the rule holds, 1 if not, 2 for missing data.

--preset ENV judges a per-env preset (issue 28): the candidate is a setting for ENV alone, so on every
other env it changes nothing and the candidate's scores there are the baseline's own (CANDIDATE need
only hold ENV's seeds). The rule then asks that ENV's IQM rise, that the normalised aggregate not fall
and that no env fall below the baseline's interval. "Not fall" rather than "rise": the aggregate IQM
trims a quarter of the runs at each end, so one env's seeds can move without moving it (ENV's own
IQM must rise, which is what a preset is for).

--widened judges a change of a default on the README's four and on Ant-v5 and Swimmer-v5 (issue 28:
what generalises counts most; those two keep the zoo's settings and no study looked at them). Their
seeds live in their own folder, so each of --baseline, --candidate and --reference takes several
folders; a seed stored in two of them with different results is refused. A --task list with one of the two
but not the other is the widened rule part-way: it says whether the rule holds there, never "adopt".
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from benchmarks.reference_scores import DEFAULT_PATH as REFERENCE_PATH
from benchmarks.reference_scores import load as load_references
from benchmarks.seedstore import README_TASKS, WIDE_TASKS, load_records, parse_task
from benchmarks.stats import estimates, final_scores, fmt_ci, improvement, normalised_matrices

ARMS = ("baseline", "candidate", "sb3-contrib")
RULE_SEEDS = 10  # the rule is judged on seeds 0-9 of each arm; fewer is a run still going on


class ConflictingSeeds(ValueError):
    """One (impl, env, seed) stored in two folders of an arm with different final evaluations."""


def scores_of(directories: Sequence[str], impl: str, tasks) -> dict[str, dict[int, float]]:
    """``{env: {seed: final evaluation}}`` of ``impl`` over every folder in ``directories``.

    Raises ConflictingSeeds if two folders hold the same seed with different results."""
    merged: dict[str, dict[int, float]] = {}
    for directory in directories:
        for env, by_seed in final_scores(load_records(directory), tasks).get(impl, {}).items():
            for seed, score in by_seed.items():
                if merged.setdefault(env, {}).setdefault(seed, score) != score:
                    raise ConflictingSeeds(f"{impl} {env} seed {seed} is stored twice with different results "
                                           f"({merged[env][seed]} and {score}, the second in {directory})")
    return merged


def verdict(per_env: dict[str, tuple], aggregate: tuple, preset: str | None = None) -> tuple[bool, list[str]]:
    """(rule holds, reasons). ``per_env``: env -> (baseline point, baseline lo, candidate point);
    ``aggregate``: (baseline point, candidate point); ``preset``: the env of a per-env preset (its IQM
    must rise; the aggregate must not fall), or None for a new default (the aggregate must rise)."""
    reasons = []
    for env, (b, lo, c) in per_env.items():
        if c < lo:
            reasons.append(f"{env}: candidate IQM {c:.4g} is below the baseline's interval (lower end {lo:.4g})")
    if preset is None and not aggregate[1] > aggregate[0]:
        reasons.append(f"normalised IQM does not rise ({aggregate[1]:.3f} against {aggregate[0]:.3f})")
    if preset is not None:
        if aggregate[1] < aggregate[0]:
            reasons.append(f"normalised IQM falls ({aggregate[1]:.3f} against {aggregate[0]:.3f})")
        b, _, c = per_env[preset]
        if not c > b:
            reasons.append(f"{preset}: the preset's IQM does not rise ({c:.4g} against {b:.4g})")
    return not reasons, reasons


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, nargs="+", metavar="DIR")
    p.add_argument("--candidate", required=True, nargs="+", metavar="DIR")
    p.add_argument("--reference", default=None, nargs="+", metavar="DIR", help="seeds dirs with sb3-contrib's runs")
    p.add_argument("--reference-impl", default="sb3-contrib",
                   help="the implementation in --reference shown beside the arms (e.g. sb3-contrib-RecurrentPPO)")
    tasks_arg = p.add_mutually_exclusive_group()
    tasks_arg.add_argument("--task", nargs="+", default=None, metavar="ENV:STEPS")
    tasks_arg.add_argument("--widened", action="store_true",
                           help="the README's four tasks and " + ", ".join(f"{e} ({n:,} steps)" for e, n in WIDE_TASKS))
    p.add_argument("--reps", type=int, default=50_000)
    p.add_argument("--preset", default=None, metavar="ENV",
                   help="the candidate is a preset for ENV only: the other envs keep the baseline's scores")
    a = p.parse_args(argv)
    tasks = [parse_task(t) for t in a.task] if a.task else list(README_TASKS) + (WIDE_TASKS if a.widened else [])
    try:
        scores = {"baseline": scores_of(a.baseline, "keras_trpo", tasks),
                  "candidate": scores_of(a.candidate, "keras_trpo", tasks)}
        if a.reference:
            scores["sb3-contrib"] = scores_of(a.reference, a.reference_impl, tasks)
    except ConflictingSeeds as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.preset:
        if a.preset not in [e for e, _ in tasks]:
            print(f"error: --preset {a.preset} is not one of the tasks {[e for e, _ in tasks]}", file=sys.stderr)
            return 2
        scores["candidate"] = {env: (scores["candidate"].get(env, {}) if env == a.preset else scores["baseline"].get(env, {}))
                               for env, _ in tasks}
    if a.reference:
        if not any(scores["sb3-contrib"].values()):
            print(f"error: no {a.reference_impl} runs of {', '.join(e for e, _ in tasks)} in "
                  f"{' '.join(a.reference)} "
                  "(--reference-impl names the implementation)", file=sys.stderr)
            return 2
    envs = [e for e, _ in tasks]
    missing = [f"{arm} {e}" for arm in ("baseline", "candidate") for e in envs if len(scores[arm].get(e, {})) < 2]
    if missing:
        print(f"error: fewer than 2 seeds for {', '.join(missing)}", file=sys.stderr)
        return 2
    print(f"| env | seeds | baseline IQM [95% CI] | candidate IQM [95% CI] | {a.reference_impl} IQM [95% CI] "
          "| P(candidate > baseline) | candidate below the baseline's interval? |")
    print("|---|---|--:|--:|--:|--:|---|")
    per_env = {}
    for env in envs:
        mats = {arm: np.array(list(scores[arm][env].values()), float)[:, None] for arm in ARMS
                if scores.get(arm, {}).get(env)}
        est = estimates(mats, a.reps)
        cell = {arm: fmt_ci(est[arm][0][0], *est[arm][1][:, 0]) if arm in est else "–" for arm in ARMS}
        pi = improvement(mats["candidate"], mats["baseline"], min(a.reps, 2000))
        b, lo, c = est["baseline"][0][0], est["baseline"][1][0, 0], est["candidate"][0][0]
        per_env[env] = (b, lo, c)
        seeds = " / ".join(str(len(scores[arm].get(env, {}))) for arm in ARMS if arm in scores)
        print(f"| {env} | {seeds} | {cell['baseline']} | {cell['candidate']} | {cell['sb3-contrib']} "
              f"| {pi[0]:.2f} [{pi[1]:.2f}, {pi[2]:.2f}] | {'yes' if c < lo else 'no'} |")
    references = load_references(REFERENCE_PATH)
    arms = [arm for arm in ARMS if arm in scores]
    agg_envs, mats, _ = normalised_matrices(scores, arms, tasks, references)
    est = estimates(mats, a.reps)
    pi = improvement(mats["candidate"], mats["baseline"], min(a.reps, 2000))
    cells = {arm: fmt_ci(est[arm][0][0], *est[arm][1][:, 0]) for arm in arms}
    print(f"| **{len(agg_envs)} envs, normalised** | | {cells['baseline']} | {cells['candidate']} "
          f"| {cells.get('sb3-contrib', '–')} | {pi[0]:.2f} [{pi[1]:.2f}, {pi[2]:.2f}] | |")
    holds, reasons = verdict(per_env, (est["baseline"][0][0], est["candidate"][0][0]), a.preset)
    print()
    rule = "Rule (per-env preset): " if a.preset else "Rule: "
    short = [f"{arm} {env} ({len(scores[arm][env])})" for arm in ("baseline", "candidate") for env in envs
             if len(scores[arm][env]) < RULE_SEEDS]
    if short:  # a run still going on: say where it stands, never "adopt"
        so_far = "would hold" if holds else "would fail: " + "; ".join(reasons)
        print(f"{rule}not judged yet: it is on {RULE_SEEDS} seeds per env, and {', '.join(short)} have fewer; "
              f"on the seeds so far it {so_far}.")
        return 1
    unrun = [e for e, _ in WIDE_TASKS if e not in envs]
    if holds and not a.preset and 0 < len(unrun) < len(WIDE_TASKS):  # part of the widened rule: where it stands
        print(f"{rule}holds on these {len(envs)} envs, but a new default is judged on the widened rule's six "
              f"(--widened), and {', '.join(unrun)} {'is' if len(unrun) == 1 else 'are'} not among them: not adopted yet.")
        return 1
    print(rule + ("holds: adopt." if holds else "fails: " + "; ".join(reasons) + "."))
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())

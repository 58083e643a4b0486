"""keras_trpo with the zoo's settings and with keras-trpo's own presets, against sb3-contrib (issue 28).

  python -m benchmarks.presets_table [--seeds-dir benchmarks/results/seeds] [--reps 50000]
                                    [--figure benchmarks/results/presets_curves.png]

Two keras_trpo rows per env of the README's four: "zoo settings" (rl-baselines3-zoo's TRPO entry, the
same hyperparameters as sb3-contrib: the seeds in --seeds-dir) and "keras-trpo presets" (the env's preset
in ``keras_trpo.presets.KERAS_TRPO_PRESETS``, whose ``seeds`` folder holds its ten seeds; an env without
one keeps the zoo settings, so that row repeats them), and sb3-contrib with the zoo's settings. Per row:
the IQM of the final evaluations (10 deterministic episodes) with a 95 % stratified-bootstrap interval,
the IQM of the last training return (mean of the last 100 episodes at the end of training), and
P(row > sb3-contrib). Then the normalised aggregate of each keras_trpo arm and sb3-contrib, and a figure
of the three arms' training-return curves per env. The presets' seeds are the adoption rule's candidate
runs (``python -m benchmarks.adoption --preset ENV``), so nothing here is trained again.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from benchmarks.benchutil import RESULTS, ROOT
from benchmarks.reference_scores import DEFAULT_PATH as REFERENCE_PATH
from benchmarks.reference_scores import load as load_references
from benchmarks.seedstore import README_TASKS, load_records
from benchmarks.stats import estimates, final_scores, fmt_ci, improvement, normalised_matrices
from keras_trpo.presets import KERAS_TRPO_PRESETS
from keras_trpo_serving.files import atomic_target

ZOO, OURS, SB3 = "keras_trpo, zoo settings", "keras_trpo, keras-trpo presets", "sb3-contrib, zoo settings"
ARMS = (ZOO, OURS, SB3)


def arm_records(seeds_dir: str) -> dict[str, list[dict]]:
    """The three arms' seed records for the README's tasks."""
    stored = load_records(seeds_dir)
    zoo = [r for r in stored if r["impl"] == "keras_trpo"]
    ours = [r for r in zoo if r["env"] not in KERAS_TRPO_PRESETS]
    for env, own in KERAS_TRPO_PRESETS.items():
        ours += [r for r in load_records(os.path.join(ROOT, own.seeds)) if r["env"] == env and r["impl"] == "keras_trpo"]
    return {ZOO: zoo, OURS: ours, SB3: [r for r in stored if r["impl"] == "sb3-contrib"]}


def last_training_return(records: list[dict], env: str, steps: int) -> np.ndarray:
    return np.array([r["curve"]["return"][-1] for r in records if (r["env"], r["request"]["timesteps"]) == (env, steps)],
                    float)


def table(arms: dict[str, list[dict]], reps: int) -> str:
    tasks = list(README_TASKS)
    scores = {arm: final_scores(recs, tasks).get("sb3-contrib" if arm == SB3 else "keras_trpo", {})
              for arm, recs in arms.items()}
    lines = ["| env | settings | seeds | final evaluation IQM [95% CI] | last training return IQM [95% CI] "
             "| P(row > sb3-contrib) |", "|---|---|--:|--:|--:|--:|"]
    for env, steps in tasks:
        finals = {arm: np.array(list(scores[arm].get(env, {}).values()), float)[:, None] for arm in ARMS}
        trains = {arm: last_training_return(arms[arm], env, steps)[:, None] for arm in ARMS}
        if any(len(v) < 2 for v in finals.values()):
            continue
        est_f, est_t = estimates(finals, reps), estimates(trains, reps)
        if env not in KERAS_TRPO_PRESETS:  # the same runs: the same cells, not a second bootstrap's
            est_f[OURS], est_t[OURS], finals[OURS] = est_f[ZOO], est_t[ZOO], finals[ZOO]
        for arm in ARMS:
            label = arm.split(", ", 1)[1] if arm != SB3 else "sb3-contrib (zoo settings)"
            if arm == OURS and env not in KERAS_TRPO_PRESETS:
                label += " (none for this env: the zoo's)"
            p = "–" if arm == SB3 else "{:.2f} [{:.2f}, {:.2f}]".format(*improvement(finals[arm], finals[SB3], min(reps, 2000)))
            lines.append(f"| {env} | {label if arm == SB3 else 'keras_trpo, ' + label} | {len(finals[arm])} "
                         f"| {fmt_ci(est_f[arm][0][0], *est_f[arm][1][:, 0])} "
                         f"| {fmt_ci(est_t[arm][0][0], *est_t[arm][1][:, 0])} | {p} |")
    references = load_references(REFERENCE_PATH)
    envs, mats, _ = normalised_matrices(scores, list(ARMS), tasks, references)
    est = estimates(mats, reps)
    lines.append(f"| **{len(envs)} envs, normalised** | " + " · ".join(
        f"{arm}: {fmt_ci(est[arm][0][0], *est[arm][1][:, 0])}" for arm in ARMS) + " | | | | |")
    return "\n".join(lines)


def figure(arms: dict[str, list[dict]], path: str, reps: int) -> None:
    """The three arms' IQM training-return curves per env (stats.curves_figure with the arms as implementations)."""
    import matplotlib

    matplotlib.use("Agg")
    from benchmarks import stats

    relabelled = [dict(r, impl=arm) for arm, recs in arms.items() for r in recs]
    fig = stats.curves_figure(relabelled, list(README_TASKS), reps, impls=ARMS,
                              colors={ZOO: "tab:blue", OURS: "tab:green", SB3: "tab:orange"})
    with atomic_target(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds-dir", default=os.path.join(RESULTS, "seeds"))
    p.add_argument("--reps", type=int, default=50_000)
    p.add_argument("--figure", default=os.path.join(RESULTS, "presets_curves.png"))
    a = p.parse_args(argv)
    arms = arm_records(a.seeds_dir)
    print(table(arms, a.reps))
    if a.figure:
        figure(arms, a.figure, a.reps)
        print(f"\nfigure: {os.path.relpath(a.figure)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

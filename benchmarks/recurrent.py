"""Partially observable tasks: recurrent keras_trpo, feed-forward keras_trpo and sb3-contrib's RecurrentPPO.

  python -m benchmarks.recurrent run [--arms recurrent feedforward recurrent_ppo] [--seeds 0-9]
                                     [--task CartPoleNoVel-v1:1e5 PendulumNoVel-v1:1e5]
                                     [--out benchmarks/results/recurrent] [--sb3-python PATH] [--dry-run]
  python -m benchmarks.recurrent table [--out ...] [--reps 50000]

Three arms on the velocity-masked tasks (keras_trpo.pomdp: CartPoleNoVel-v1, PendulumNoVel-v1, named
and masked as rl-baselines3-zoo does):

- recurrent: keras_trpo with the env's preset, which is recurrent (an LSTM of 64; keras_trpo.presets
  RECURRENT_PRESETS, after the zoo's ppo_lstm.yml rollouts);
- feedforward: the same preset with ``--set recurrent=null`` (the 64x64 MLP alone);
- recurrent_ppo: sb3-contrib's RecurrentPPO with the zoo's ppo_lstm.yml entry (sb3_runner.py --recurrent-ppo).

``table`` adds a row "keras-trpo preset" for a task with keras-trpo's own preset
(``keras_trpo.presets.KERAS_TRPO_PRESETS``), read from the preset's ten-seed runs (``OwnPreset.seeds``,
the adoption rule's candidate), not made by ``run``.

Every training run is a ``seeds.py run`` child stored at once in OUT/ARM/IMPL/ENV/seed_N.json, so a
killed run resumes where it stopped and seeds can be spread over days; the arms are interleaved seed
by seed (seed 0 of every arm and task, then seed 1, ...), one run at a time, so wall-clock steps/s are
comparable. ``table`` prints, per task and arm, the IQM and mean of the final evaluations (10
deterministic episodes on env seeds 10000-10009) with 95 % stratified-bootstrap intervals (rliable,
as stats.py does for the README's table) and the median steps/s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from benchmarks.benchutil import RESULTS, ROOT, child_env, module_command, run_subcommand
from benchmarks.seedstore import load_records, parse_seeds, parse_task

DEFAULT_OUT = os.path.join(RESULTS, "recurrent")
TASKS = ["CartPoleNoVel-v1:1e5", "PendulumNoVel-v1:1e5"]
# arm -> the seeds.py arguments that make it
ARMS: dict[str, list[str]] = {
    "recurrent": ["--impl", "keras_trpo"],
    "feedforward": ["--impl", "keras_trpo", "--set", "recurrent=null"],
    "recurrent_ppo": ["--impl", "recurrent_ppo"],
}
PRESET_ARM = "keras-trpo preset"  # a table row only: the runs are the preset's own (OwnPreset.seeds)


def seeds_command(arm: str, tasks: list[str], seed: int, out: str, sb3_python: str | None) -> list[str]:
    cmd = module_command(sys.executable, "seeds", "run", *ARMS[arm], "--task", *tasks, "--seeds", str(seed),
                         "--out", os.path.join(out, arm))
    return cmd + (["--sb3-python", sb3_python] if sb3_python and arm == "recurrent_ppo" else [])


def cmd_run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recurrent run",
                                description="train the missing seeds of every arm")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--task", nargs="+", default=TASKS, metavar="ENV:STEPS")
    p.add_argument("--seeds", nargs="+", default=["0-9"])
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--sb3-python", default=None)
    p.add_argument("--dry-run", action="store_true", help="print the seeds.py commands and exit")
    a = p.parse_args(argv)
    try:
        for t in a.task:
            parse_task(t)
        seeds = parse_seeds(a.seeds)
    except ValueError as e:
        p.error(str(e))
    failed = 0
    for seed in seeds:
        for arm in a.arms:
            cmd = seeds_command(arm, a.task, seed, a.out, a.sb3_python)
            print("$ " + " ".join(cmd), flush=True)
            if a.dry_run:
                continue
            code = subprocess.run(cmd, env=child_env()).returncode
            if code in (2, 130, 143):  # a bad request or a stop: the next seeds would end the same way
                return code
            failed += code != 0
    return 1 if failed else 0


def arm_scores(out: str, tasks: list[tuple[str, int]]) -> dict[str, dict[str, list[dict]]]:
    """``{arm: {env: [record, ...]}}`` for the requested (env, timesteps)."""
    wanted = set(tasks)
    found: dict = {}
    for arm in ARMS:
        for r in load_records(os.path.join(out, arm)) if os.path.isdir(os.path.join(out, arm)) else []:
            if (r["env"], r["request"]["timesteps"]) in wanted and r.get("eval_mean") is not None:
                found.setdefault(arm, {}).setdefault(r["env"], []).append(r)
    from keras_trpo.presets import KERAS_TRPO_PRESETS

    for env, own in KERAS_TRPO_PRESETS.items():
        for r in load_records(os.path.join(ROOT, own.seeds)):
            if (r["env"], r["request"]["timesteps"]) in wanted and r["env"] == env and r.get("eval_mean") is not None:
                found.setdefault(PRESET_ARM, {}).setdefault(env, []).append(r)
    return found


def cmd_table(argv: list[str]) -> int:
    import numpy as np

    from benchmarks.stats import estimates, fmt_ci

    p = argparse.ArgumentParser(prog="python -m benchmarks.recurrent table",
                                description="IQM, mean and steps/s per task and arm")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--task", nargs="+", default=TASKS, metavar="ENV:STEPS")
    p.add_argument("--reps", type=int, default=50_000, help="bootstrap replications")
    a = p.parse_args(argv)
    tasks = [parse_task(t) for t in a.task]
    found = arm_scores(a.out, tasks)
    print("| task | arm | seeds | IQM [95% CI] | mean [95% CI] | steps/s (median) |")
    print("|---|---|--:|--:|--:|--:|")
    for env, steps in tasks:
        for arm in ["recurrent", PRESET_ARM, *[a for a in ARMS if a != "recurrent"]]:
            records = sorted(found.get(arm, {}).get(env, []), key=lambda r: r["seed"])
            if not records and arm == PRESET_ARM:
                continue  # the env has no preset of its own: the recurrent row is its preset
            if not records:
                print(f"| {env} ({steps:,}) | {arm} | 0 | – | – | – |")
                continue
            scores = np.array([[r["eval_mean"]] for r in records], float)
            point, ci = estimates({arm: scores}, a.reps)[arm]
            speed = statistics.median(r["steps_per_s"] for r in records)
            print(f"| {env} ({steps:,}) | {arm} | {len(records)} | {fmt_ci(point[0], *ci[:, 0])} | "
                  f"{fmt_ci(point[1], *ci[:, 1])} | {speed:,.0f} |")
    return 0


def main(argv: list[str]) -> int:
    return run_subcommand(argv, {"run": cmd_run, "table": cmd_table}, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

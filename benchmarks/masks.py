"""Invalid-action masking (issue 29): keras_trpo with masks, without, and sb3-contrib's MaskablePPO.

  python -m benchmarks.masks run [--arms masked unmasked maskable_ppo] [--task Taxi-v4:1e5 JointLimits-v0:1e5]
                                 [--seeds 0-9] [--out benchmarks/results/masks] [--sb3-python PATH] [--dry-run]
  python -m benchmarks.masks run --arms recurrent_masked --task JointLimits-v0:1e5 --seeds 0-2
  python -m benchmarks.masks run --arms recurrent_masked_preset masked_preset --task JointLimitsMemory-v0:2e5 --seeds 0
  python -m benchmarks.masks run --arms recurrent_masked masked --task JointLimitsFlicker-v0:2e5 --seeds 0-2
  python -m benchmarks.masks table [--out ...] [--reps 50000]

Arms (each a ``seeds.py run`` into OUT/ARM/IMPL/ENV/seed_N.json, so every finished seed is stored at
once and a rerun resumes; the arms asked for are interleaved seed by seed, one run at a time, so a run
stopped half way has the same seeds of every arm):

- masked: keras_trpo, ``--set action_masks=on`` (the env must give masks), the env's preset otherwise
  (``keras-trpo presets``; Taxi-v4 and JointLimits-v0 have none: sb3-contrib's TRPO defaults);
- unmasked: the same with ``--set action_masks=off``, the baseline that learns to avoid what the env refuses;
- maskable_ppo: sb3-contrib's MaskablePPO with its documented defaults (``sb3_runner.py --maskable-ppo``;
  rl-baselines3-zoo has no entry for it on these envs);
- recurrent_masked: keras_trpo with masks and an LSTM (``--set recurrent=lstm``): on JointLimits-v0, and
  on the partially observable JointLimitsMemory-v0 (the target is shown on the first step only) beside
  ``masked`` (feed-forward, which cannot remember the target);
- recurrent_masked_preset, masked_preset: the same with and without the cell, plus the two settings of
  keras_trpo's recurrent presets (normalised observations, max_kl 0.05), on JointLimitsMemory-v0.

Partially observable: JointLimitsMemory-v0 (the target on the first step only) and JointLimitsFlicker-v0
(on the first step and then on a fifth of the steps: a feed-forward policy can move only when it sees
the target, a recurrent one on every step), the ``recurrent_masked`` arm beside ``masked``.

Tasks: Taxi-v4 (Discrete(6), masks in ``info["action_mask"]``) and JointLimits-v0 (MultiDiscrete([3, 3, 3]),
``action_masks()``; keras_trpo.joint_limits). Every arm is evaluated the same way
(benchmarks/maskcount.py): 10 deterministic episodes on env seeds 10000-10009, the env's mask handed to
a masked learner, and invalid actions (actions the env's mask forbade; a MultiDiscrete action with any
forbidden sub-action counts once) counted in training and in that evaluation, whether the learner saw
the mask or not.

``table`` prints two tables (the ten-seed comparison of the three arms on TASKS, then every other arm
and task), per task and arm the IQM of the final evaluations with its 95 % stratified-bootstrap
interval (rliable, stats.py's), the median steps/s (wall clock, and per CPU second of the training
process), and the invalid actions taken: in the evaluation (all seeds' episodes together) and in
training (mean per seed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from benchmarks.benchutil import RESULTS, child_env, module_command, run_subcommand
from benchmarks.seedstore import load_records, parse_seeds, parse_task

DEFAULT_OUT = os.path.join(RESULTS, "masks")
BUDGET = "1e5"  # environment steps per run, every arm alike (chosen on MaskablePPO's pilot; docs/benchmarks/masks.md)
TASKS = [f"Taxi-v4:{BUDGET}", f"JointLimits-v0:{BUDGET}"]
# The training return each task's "steps to reach" column asks for (mean of the last 100 training episodes,
# stochastic policy): Taxi-v4 0 (deliveries outweigh the steps; random play scores about -770), JointLimits
# 0.8 (within 0.07 of the optimal policy's 0.87; random valid commands score -1.6); JointLimitsFlicker 0
# (reaching the target outweighs the steps: the stochastic policies of a 500k run end near 0.3-0.4).
THRESHOLDS = {"Taxi-v4": 0.0, "JointLimits-v0": 0.8, "JointLimitsMemory-v0": 0.8, "JointLimitsFlicker-v0": 0.0}
RECURRENT_SETTINGS = ["--set", "normalize_obs=true", "--set", "max_kl=0.05"]
# arm -> (the seeds.py arguments that make it, the table's label)
ARMS: dict[str, tuple[list[str], str]] = {
    "masked": (["--impl", "keras_trpo", "--set", "action_masks=on"], "keras_trpo, masks"),
    "unmasked": (["--impl", "keras_trpo", "--set", "action_masks=off"], "keras_trpo, no masks"),
    "maskable_ppo": (["--impl", "maskable_ppo"], "MaskablePPO"),
    "recurrent_masked": (["--impl", "keras_trpo", "--set", "action_masks=on", "--set", "recurrent=lstm"],
                         "keras_trpo LSTM, masks"),
    # keras_trpo's recurrent presets' own two settings (keras_trpo/presets.py _RECURRENT_TRPO: normalised
    # observations, max_kl 0.05), with and without the cell, for the memory task
    "recurrent_masked_preset": (["--impl", "keras_trpo", "--set", "action_masks=on", "--set", "recurrent=lstm",
                                 *RECURRENT_SETTINGS], "keras_trpo LSTM, masks, recurrent settings"),
    "masked_preset": (["--impl", "keras_trpo", "--set", "action_masks=on", *RECURRENT_SETTINGS],
                      "keras_trpo, masks, recurrent settings"),
}


def seeds_command(arm: str, tasks: list[str], seed: int, out: str, sb3_python: str | None) -> list[str]:
    """The ``seeds.py run`` command of one arm and seed (its tasks one after the other)."""
    cmd = module_command(sys.executable, "seeds", "run", *ARMS[arm][0], "--task", *tasks, "--seeds", str(seed),
                         "--out", os.path.join(out, arm), "--jobs", "1")
    return cmd + (["--sb3-python", sb3_python] if sb3_python and arm == "maskable_ppo" else [])


def cmd_run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.masks run", description="train the missing seeds of arms")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=["masked", "unmasked", "maskable_ppo"])
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
            code = subprocess.run(cmd, env=child_env(), check=False).returncode
            if code in (2, 130, 143):  # a bad request or a stop: the next seeds would end the same way
                return code
            failed += code != 0
    return 1 if failed else 0


def arm_records(out: str) -> dict[tuple[str, int], dict[str, list[dict]]]:
    """``{(env, timesteps): {arm: [record, ...]}}`` of everything stored under ``out``, records by seed."""
    found: dict = {}
    for arm in ARMS:
        folder = os.path.join(out, arm)
        for r in load_records(folder) if os.path.isdir(folder) else []:
            if r.get("eval_mean") is not None:
                found.setdefault((r["env"], r["request"]["timesteps"]), {}).setdefault(arm, []).append(r)
    return found


def invalid_cells(records: list[dict]) -> tuple[str, str]:
    """(invalid actions in the evaluation, all seeds together; in training, mean per seed), '?' where a
    record lacks the count."""
    ev = [r.get("invalid_actions_eval") for r in records]
    tr = [r.get("invalid_actions_train") for r in records]
    eval_cell = "?" if any(x is None for x in ev) else f"{sum(ev):,}"
    train_cell = "?" if any(x is None for x in tr) else (
        "0" if not any(tr) else f"{statistics.mean(tr):,.0f}")
    return eval_cell, train_cell


def first_reaching(record: dict, threshold: float) -> int | None:
    """The first logged timestep at which the record's training return is at least ``threshold``, else None."""
    curve = record.get("curve") or {}
    for t, ret in zip(curve.get("timesteps", []), curve.get("return", [])):
        if ret is not None and ret >= threshold:
            return int(t)
    return None


def reach_cell(records: list[dict], threshold: float | None) -> str:
    """Median steps to reach ``threshold`` over the seeds that did, and how many did if not all."""
    if threshold is None:
        return "–"
    steps = [s for s in (first_reaching(r, threshold) for r in records) if s is not None]
    if not steps:
        return "not reached"
    median = f"{statistics.median(steps):,.0f}"
    return median if len(steps) == len(records) else f"{median} ({len(steps)} of {len(records)} seeds)"


ENV_ORDER = {"Taxi-v4": 0, "JointLimits-v0": 1, "JointLimitsFlicker-v0": 2, "JointLimitsMemory-v0": 3}
MAIN_ARMS = ("masked", "unmasked", "maskable_ppo")  # the ten-seed comparison of TASKS


def row_cells(env: str, steps: int, arm: str, records: list[dict], reps: int, estimates, fmt_ci, np
              ) -> tuple[tuple[str, int, str], str]:
    """((env, steps, arm), the table row) for one arm's records of one task."""
    scores = np.array([[r["eval_mean"]] for r in records], float)
    point, ci = estimates({arm: scores}, reps)[arm]
    speed = statistics.median(r["steps_per_s"] for r in records)
    per_cpu = statistics.median(r["timesteps"] / r["cpu_s"] for r in records) if all(
        r.get("cpu_s") and r.get("timesteps") for r in records) else None
    ev, tr = invalid_cells(records)
    row = (f"| {env} ({steps:,}) | {ARMS[arm][1]} | {len(records)} | {fmt_ci(point[0], *ci[:, 0])} | "
           f"{reach_cell(records, THRESHOLDS.get(env))} | {speed:,.0f} | "
           f"{'?' if per_cpu is None else f'{per_cpu:,.0f}'} | {ev} | {tr} |")
    return (env, steps, arm), row


def cmd_table(argv: list[str]) -> int:
    import numpy as np

    from benchmarks.stats import estimates, fmt_ci

    p = argparse.ArgumentParser(prog="python -m benchmarks.masks table",
                                description="IQM with 95 % intervals, steps/s and invalid actions per task and arm")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--reps", type=int, default=50_000, help="bootstrap replications")
    a = p.parse_args(argv)
    found = arm_records(a.out)
    main = {parse_task(t) for t in TASKS}
    rows = [row_cells(env, steps, arm, sorted(arms[arm], key=lambda r: r["seed"]), a.reps, estimates, fmt_ci, np)
            for (env, steps), arms in sorted(found.items(), key=lambda kv: (ENV_ORDER.get(kv[0][0], 99), kv[0]))
            for arm in ARMS if arms.get(arm)]
    head = ("| task | arm | seeds | IQM [95% CI] | steps to reach (median) | steps/s (median) | "
            "steps per CPU second (median) | invalid actions, evaluation | invalid actions, training (per seed) |\n"
            "|---|---|--:|--:|--:|--:|--:|--:|--:|")
    # the ten-seed comparison first (the README's table), then the recurrent and partially observable runs
    first = [r for (env, steps, arm), r in rows if (env, steps) in main and arm in MAIN_ARMS]
    rest = [r for (env, steps, arm), r in rows if not ((env, steps) in main and arm in MAIN_ARMS)]
    print(head)
    print("\n".join(first))
    if rest:
        print()
        print("Recurrent policies and the partially observable tasks, with masks: JointLimitsFlicker-v0 (the "
              "target shown on the first step and then on a fifth of the steps) and JointLimitsMemory-v0 (on the "
              "first step only):")
        print()
        print(head)
        print("\n".join(rest))
    reach = ", ".join(f"{v:g} on {k}" for k, v in THRESHOLDS.items())
    print()
    print("IQM of the final evaluation (10 deterministic episodes on env seeds 10000-10009, the env's masks "
          "handed to a masked learner) over training seeds, 95 % stratified-bootstrap interval (rliable, "
          f"{a.reps:,} replications). Steps to reach: training steps until the mean return of the last 100 "
          f"training episodes first reached {reach} (median over the seeds that did). Invalid actions: actions "
          "the env's mask forbade (a JointLimits action with any refused command counts once), counted whether "
          "or not the learner saw the mask; evaluation: all seeds' episodes together; training: mean per seed. "
          "steps/s: environment steps over training wall time (updates included), median over seeds, under the "
          "machine's other load; steps per CPU second: the same steps over the training process's CPU time (all "
          "its threads), which that load disturbs less.")
    return 0


def main(argv: list[str]) -> int:
    return run_subcommand(argv, {"run": cmd_run, "table": cmd_table}, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

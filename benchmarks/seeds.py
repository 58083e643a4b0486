"""Many seeds per library per env, resumable: every finished training run is stored at once in its own file.

  python -m benchmarks.seeds run [--impl keras_trpo sb3] [--task ENV:STEPS ...] [--seeds 0-9]
                                 [--out benchmarks/results/seeds] [--jobs 1] [--set NAME=VALUE ...]
                                 [--sb3-python PATH] [--replace] [--dry-run]
  python -m benchmarks.seeds status [--out ...]   # what is stored, what is running
  python -m benchmarks.seeds check [--out ...]    # keras_trpo's and sb3-contrib's hyperparameters, per env
  python -m benchmarks.seeds identical DIR_A DIR_B  # same final evaluation and curve, seed by seed?

Without --task, the README's four: CartPole-v1:1e5, Pendulum-v1:1e5, Hopper-v5:1e6, HalfCheetah-v5:1e6.
Each training run is one child process, the same children as compare.py's (keras_trpo:
compare.py --child; sb3-contrib: sb3_runner.py under the sb3 Python), so the settings, the
evaluation and the hyperparameter check are compare.py's. Shorter tasks run first; then seed by
seed, envs and libraries interleaved. Rerunning the same command skips every stored seed (see
seedstore.py for the layout, locks and conflicts), so a run killed or spread over days continues
where it stopped.

--set NAME=VALUE sets a TRPOConfig field of the keras_trpo children (e.g. --set
rollout_backend=process --set rollout_workers=2); it is part of each seed's stored request, so
seeds run with other settings are never mixed in.

--jobs N runs N children at once. Returns do not depend on it, but wall-clock steps/s do (the
children share the cores), so every record carries its CPU time and the machine's load during the
run; the README's speed ratio comes from runs made one at a time side by side (stats.py --timing).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time

from benchmarks.benchutil import RESULTS, ROOT, machine_cpu_times, machine_summary, module_command, run_subcommand
from benchmarks.compare import (IMPLS, BadRequest, find_sb3_python, hyperparameter_differences, keras_trpo_command,
                     parse_set, run_child, sb3_command)
from benchmarks.seedstore import (FORMAT, README_TASKS, Task, claim, load_records, locked_by, parse_seeds, parse_task,
                       plan, release, request, seed_path, status, write_record)

DEFAULT_OUT = os.path.join(RESULTS, "seeds")
# compare.py's two, sb3-contrib's RecurrentPPO with the zoo's ppo_lstm.yml settings (sb3_runner.py
# --recurrent-ppo; the velocity-masked tasks, see benchmarks/recurrent.py) and its MaskablePPO with its
# documented defaults (sb3_runner.py --maskable-ppo; the action-mask tasks, see benchmarks/masks.py).
SEED_IMPLS = {**IMPLS, "recurrent_ppo": "sb3-contrib-RecurrentPPO", "maskable_ppo": "sb3-contrib-MaskablePPO"}
SB3_FLAGS = {SEED_IMPLS["recurrent_ppo"]: ["--recurrent-ppo"], SEED_IMPLS["maskable_ppo"]: ["--maskable-ppo"]}
STORED = {v: k for k, v in SEED_IMPLS.items()}  # stored name -> --impl name


# ---------------------------------------------------------------- one run
def git_state() -> dict:
    """HEAD and the uncommitted files under keras_trpo/ and benchmarks/ (they decide what a run measures)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "keras_trpo", "benchmarks").splitlines()
             if not line[3:].startswith("benchmarks/results")]
    return {"commit": git("rev-parse", "HEAD").strip() or None, "dirty": dirty}


def curve_columns(curve: list) -> dict:
    """``[(timesteps, wall_s, return), ...]`` -> ``{"timesteps": [...], "wall_s": [...], "return": [...]}``."""
    cols = list(zip(*curve)) if curve else [(), (), ()]
    return {"timesteps": [int(t) for t in cols[0]], "wall_s": [round(float(w), 3) for w in cols[1]],
            "return": [float(r) for r in cols[2]]}


def make_record(task: Task, overrides: dict, result: dict, timing: dict, command: str, git: dict) -> dict:
    """The stored file: the child's result (curve as columns) plus request, timing and provenance."""
    record = dict(format=FORMAT, impl=task.impl, env=task.env, seed=task.seed, request=request(task, overrides))
    record.update((k, v) for k, v in result.items() if k not in record and k != "curve")
    record.update(timing=timing, machine=machine_summary(), command=command, git=git,
                  curve=curve_columns(result["curve"]))
    return record


def run_one(task: Task, overrides: dict, sb3_python: str | None, jobs: int, running: set) -> tuple[dict, dict] | None:
    """Train one seed in a child; (result, timing) or None if it failed. Raises BadRequest."""
    if task.impl == "keras_trpo":
        cmd = keras_trpo_command(task.env, task.timesteps, task.seed, overrides)
    elif task.impl in SB3_FLAGS:
        cmd = module_command(sb3_python, "sb3_runner", *SB3_FLAGS[task.impl], task.env, str(task.timesteps),
                             str(task.seed))
    else:
        cmd = sb3_command(sb3_python, task.env, task.timesteps, task.seed)
    started = datetime.datetime.now(datetime.timezone.utc)
    load0, cpu0, t0 = os.getloadavg(), machine_cpu_times(), time.perf_counter()
    result = run_child(cmd, f"{task.impl} {task.env} seed {task.seed}", running)
    life = time.perf_counter() - t0
    load1, cpu1 = os.getloadavg(), machine_cpu_times()
    if result is None:
        return None
    busy = (cpu1[0] - cpu0[0]) / life if cpu0 and cpu1 else None
    own = result["process_cpu_s"] / life
    timing = {
        "started": started.isoformat(timespec="seconds"), "child_life_s": round(life, 2), "jobs": jobs,
        "nice": os.getpriority(os.PRIO_PROCESS, 0), "cores": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in load1],
        # average number of busy cores over the child's life (all processes), its own share, and the rest
        "busy_cores": None if busy is None else round(busy, 3), "own_cores": round(own, 3),
        "other_cores": None if busy is None else round(max(busy - own, 0.0), 3),
    }
    return result, timing


# ---------------------------------------------------------------- the hyperparameter cross-check
def cross_check(records: list[dict], env: str) -> str | None:
    """compare.py's check on the lowest seed of ``env`` that both libraries have; None if there is none."""
    by = {(r["impl"], r["seed"]): r for r in records if r["env"] == env}
    common = sorted(s for (impl, s) in by if impl == "keras_trpo" and ("sb3-contrib", s) in by)
    if not common:
        return None
    k, s = by[("keras_trpo", common[0])], by[("sb3-contrib", common[0])]
    n, diffs = hyperparameter_differences(k, s)
    if diffs:
        return f"notice: {env} (seed {common[0]}): keras_trpo and sb3-contrib hyperparameters differ: " + "; ".join(diffs)
    return f"{env}: same hyperparameters in keras_trpo and sb3-contrib ({n} settings checked, seed {common[0]})"


# ---------------------------------------------------------------- commands
def cmd_run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seeds run",
                                description="train the missing seeds, storing each at once")
    p.add_argument("--impl", nargs="+", choices=list(SEED_IMPLS), default=list(IMPLS))
    p.add_argument("--task", nargs="+", default=None, metavar="ENV:STEPS",
                   help="e.g. Hopper-v5:1e6 (default: the README's four)")
    p.add_argument("--seeds", nargs="+", default=["0-9"], help="e.g. 0-9, or 0 1 2 (default 0-9)")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--jobs", type=int, default=1, help="children at once (default 1; see the module docstring)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a TRPOConfig field for the keras_trpo children (repeatable)")
    p.add_argument("--sb3-python", default=None)
    p.add_argument("--replace", action="store_true", help="run again and replace seeds stored with another request")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    a = p.parse_args(argv)
    try:
        tasks = [parse_task(t) for t in a.task] if a.task else list(README_TASKS)
        seeds = parse_seeds(a.seeds)
        overrides = parse_set(a.set)
    except ValueError as e:
        p.error(str(e))
    if a.jobs < 1:
        p.error("--jobs must be at least 1")
    if overrides and "keras_trpo" not in a.impl:
        p.error("--set applies to keras_trpo only, which --impl leaves out")
    impls = [SEED_IMPLS[i] for i in dict.fromkeys(a.impl)]
    todo, conflicts, done = [], [], 0
    for task in plan(tasks, seeds, impls):
        state, detail = status(a.out, task, overrides)
        if state == "done":
            done += 1
        elif state == "conflict" and not a.replace:
            conflicts.append(detail)
        else:
            todo.append(task)
    if conflicts:
        print("error: stored seeds were run with other settings (use another --out, or --replace to run them "
              "again):\n  " + "\n  ".join(conflicts), file=sys.stderr)
        return 2
    print(f"{done} of {done + len(todo)} runs already stored in {a.out}; {len(todo)} to do", flush=True)
    if a.dry_run:
        for t in todo:
            print(f"  {t.impl} {t.env} {t.timesteps} seed {t.seed}")
        return 0
    sb3_python = None
    if any(t.impl != "keras_trpo" for t in todo):
        sb3_python, why = find_sb3_python(a.sb3_python)
        if sb3_python is None:
            print(f"error: sb3-contrib runs asked for, but {why}. Set it up as in benchmarks/README.md and pass "
                  "--sb3-python or set SB3_PYTHON, or leave it out with --impl keras_trpo.", file=sys.stderr)
            return 2
    command = "python -m benchmarks.seeds run " + shlex.join(argv)
    git = git_state()
    work: queue.Queue = queue.Queue()
    for t in todo:
        work.put(t)
    running: set = set()
    stop, lock = threading.Event(), threading.Lock()
    outcome = {"failed": 0, "finished": 0, "bad": None, "busy": 0}
    checked: set = set()

    def worker() -> None:
        while not stop.is_set():
            try:
                task = work.get_nowait()
            except queue.Empty:
                return
            path = seed_path(a.out, task.impl, task.env, task.seed)
            if not claim(path):
                with lock:
                    outcome["busy"] += 1
                print(f"skip: {path} is being run by process {locked_by(path)}", flush=True)
                continue
            try:
                if status(a.out, task, overrides)[0] == "done":
                    continue  # another runner stored it between our plan and our claim
                got = run_one(task, overrides, sb3_python, a.jobs, running)
                if got is None:  # a failed run, or one stopped by a signal: nothing to store
                    with lock:
                        outcome["failed"] += not stop.is_set()
                    continue
                result, timing = got
                write_record(path, make_record(task, overrides, result, timing, command, git))
                with lock:
                    outcome["finished"] += 1
                    n = outcome["finished"]
                print(f"[{n}/{len(todo)}] {task.impl} {task.env} seed {task.seed}: eval {result['eval_mean']:.1f} "
                      f"± {result['eval_std']:.1f}, {result['timesteps']} steps in {result['wall_s']:.1f} s "
                      f"({result['steps_per_s']:,.0f} steps/s, training CPU {result['cpu_s']:.1f} s, other load "
                      f"{timing['other_cores']} cores) -> {os.path.relpath(path)}", flush=True)
                with lock:
                    if task.env not in checked:
                        msg = cross_check(load_records(a.out), task.env)
                        if msg:
                            checked.add(task.env)
                            print(msg, flush=True)
            except BadRequest as e:
                with lock:
                    outcome["bad"] = str(e)
                stop.set()
            finally:
                release(path)

    def on_signal(signum, frame):
        stop.set()
        for proc in list(running):
            proc.terminate()
        print(f"stopping on signal {signum}: runs in progress are dropped, stored seeds are kept", file=sys.stderr,
              flush=True)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(a.jobs, len(todo)))]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if outcome["bad"]:
        print(f"error: {outcome['bad']}", file=sys.stderr)
        return 2
    print(f"{outcome['finished']} runs stored, {outcome['failed']} failed, {outcome['busy']} left to another runner"
          + (", stopped early" if stop.is_set() else ""), flush=True)
    print(status_table(a.out))
    if stop.is_set():
        return 143
    return 1 if outcome["failed"] else 0


def status_table(out: str) -> str:
    """Plain-text table: per (impl, env, requested steps) the stored seeds, their evals' median, and live locks."""
    records = load_records(out)
    groups: dict = {}
    for r in records:
        groups.setdefault((r["impl"], r["env"], r["request"]["timesteps"], json.dumps(r["request"]["overrides"])),
                          []).append(r)
    running = []
    for root, _, files in os.walk(out) if os.path.isdir(out) else []:
        for f in files:
            if f.endswith(".json.lock"):
                pid = locked_by(os.path.join(root, f[:-len(".lock")]))
                if pid:
                    running.append(f"{os.path.relpath(os.path.join(root, f[:-len('.lock')]), out)} (pid {pid})")
    head = ("impl", "env", "steps", "overrides", "seeds", "stored", "median eval", "commits")
    rows = []
    for (impl, env, steps, over), rs in sorted(groups.items()):
        evals = sorted(r["eval_mean"] for r in rs)
        median = (evals[(len(evals) - 1) // 2] + evals[len(evals) // 2]) / 2
        commits = sorted({(r.get("git") or {}).get("commit") or "?" for r in rs})
        rows.append((impl, env, str(steps), over if over != "{}" else "", _ranges(sorted(r["seed"] for r in rs)),
                     str(len(rs)), f"{median:.1f}", ",".join(c[:8] for c in commits)))
    if not rows:
        text = f"(nothing stored in {out})"
    else:
        widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
        text = "\n".join("  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in [head] + rows)
    return text + ("\nrunning: " + "; ".join(running) if running else "")


def _ranges(seeds: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


def cmd_status(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seeds status",
                                description="what is stored and what is running")
    p.add_argument("--out", default=DEFAULT_OUT)
    print(status_table(p.parse_args(argv).out))
    return 0


def cmd_check(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seeds check",
                                description="hyperparameter cross-check per env")
    p.add_argument("--out", default=DEFAULT_OUT)
    records = load_records(p.parse_args(argv).out)
    differ = False
    for env in dict.fromkeys(r["env"] for r in records):
        msg = cross_check(records, env) or f"{env}: no seed stored for both libraries yet"
        differ |= msg.startswith("notice")
        print(msg)
    return 1 if differ else 0


def differences(a: dict, b: dict) -> list[str]:
    """How two records of one (impl, env, seed) differ in what training produced: trained steps, final
    evaluation, and the learning curve's steps and returns (bit for bit; wall times are not compared)."""
    out = [f"{k}: {a.get(k)} vs {b.get(k)}" for k in ("timesteps", "eval_mean", "eval_std") if a.get(k) != b.get(k)]
    for k in ("timesteps", "return"):
        ca, cb = a["curve"][k], b["curve"][k]
        if ca != cb:
            first = next((i for i, (x, y) in enumerate(zip(ca, cb)) if x != y), min(len(ca), len(cb)))
            out.append(f"curve {k} differs from point {first} on ({len(ca)} vs {len(cb)} points)")
    return out


def cmd_identical(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seeds identical",
                                description="do two result directories hold the same results for the seeds both have? "
                                            "(e.g. keras_trpo with --set rollout_backend=process against inline)")
    p.add_argument("a")
    p.add_argument("b")
    a = p.parse_args(argv)
    ra = {(r["impl"], r["env"], r["request"]["timesteps"], r["seed"]): r for r in load_records(a.a)}
    rb = {(r["impl"], r["env"], r["request"]["timesteps"], r["seed"]): r for r in load_records(a.b)}
    common = sorted(set(ra) & set(rb))
    if not common:
        print(f"error: {a.a} and {a.b} have no (impl, env, timesteps, seed) in common", file=sys.stderr)
        return 2
    differ = 0
    for key in common:
        diffs = differences(ra[key], rb[key])
        differ += bool(diffs)
        print(f"{' '.join(map(str, key))}: " + ("identical" if not diffs else "DIFFERENT: " + "; ".join(diffs)))
    print(f"{len(common) - differ} of {len(common)} identical")
    return 1 if differ else 0


def main(argv: list[str]) -> int:
    return run_subcommand(argv, {"run": cmd_run, "status": cmd_status, "check": cmd_check, "identical": cmd_identical},
                          __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

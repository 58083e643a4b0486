"""keras_trpo against sb3-contrib's TRPO: same hyperparameters, same seeds, one run after the other.

  python -m benchmarks.compare ENV --timesteps N [--seeds 0 1 2] [--impl keras_trpo sb3]
                               [--out benchmarks/results] [--sb3-python PATH] [--set NAME=VALUE ...]
  python -m benchmarks.compare table [ENV ...] [--out benchmarks/results]   # Markdown table for the README
  python -m benchmarks.compare [ENV ...] --readme-table [--out ...]         # the same
  python -m benchmarks.compare plot ENV [--out ...]                         # redraw OUT/compare_ENV.png

Every training runs in its own child process (keras_trpo: this file with --child; sb3-contrib:
sb3_runner.py under the sb3 Python), so each run's peak memory is its own. The children print one
"RESULT {json}" line; other output and progress go to stderr.

Writes, atomically, after every run:
  OUT/curves_ENV.csv  impl, env, seed, timesteps, wall_s, return (mean of the last 100 training episodes)
  OUT/summary.csv     impl, env, seed, timesteps, eval_mean, eval_std, wall_s, steps_per_s, rollout_s,
                      update_s, peak_mem_mb, date, machine, command
A new run replaces the rows of the same (impl, env, seed). At the end: OUT/compare_ENV.png.

sb3-contrib runs under --sb3-python, else $SB3_PYTHON, else sb3venv/bin/python next to or inside
the repository (/work/sb3venv here), if that Python imports sb3_contrib; otherwise it is skipped
with a notice.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time

from benchmarks.benchutil import (RESULTS, ROOT, child_env, decile_progress, machine_summary, module_command,
                                  peak_rss_mb, process_cpu_s)
from keras_trpo_serving.files import atomic_write_text

IMPLS = {"keras_trpo": "keras_trpo", "sb3": "sb3-contrib"}  # --impl name -> name in the CSVs
CURVE_FIELDS = ["impl", "env", "seed", "timesteps", "wall_s", "return"]
SUMMARY_FIELDS = ["impl", "env", "seed", "timesteps", "eval_mean", "eval_std", "wall_s", "steps_per_s", "rollout_s",
                  "update_s", "peak_mem_mb", "date", "machine", "command"]
EVAL_EPISODES, EVAL_SEED = 10, 10_000


# ---------------------------------------------------------------- the keras_trpo child
BAD_REQUEST = 2  # a child's exit code when the request itself is wrong (e.g. an unknown --set name): no seed can run


class BadRequest(RuntimeError):
    """A child exited with BAD_REQUEST: its settings are wrong, so every other seed would fail the same way."""


def zoo_config(env_id: str):
    """The benchmark's keras_trpo settings for ``env_id``: rl-baselines3-zoo's (sb3-contrib's hyperparameters),
    never keras-trpo's own preset, so that every stored "zoo settings" seed reruns as it was made (a preset's
    arm passes its settings with ``--set``, as ``benchmarks/results/ahead/halfcheetah_trial5`` was made)."""
    import gymnasium as gym

    import keras_trpo.envs  # noqa: F401 - registers keras_trpo's own env ids
    from keras_trpo.config import default_config

    probe = gym.make(env_id)
    try:
        return default_config(env_id, probe.action_space, presets="zoo")
    finally:
        probe.close()


def keras_trpo_child(env_id: str, steps: int, seed: int, overrides: dict | None = None) -> dict:
    """Train, evaluate, and report; runs in its own process (``compare.py --child keras_trpo``).

    ``overrides`` are TRPOConfig fields set on top of the zoo's settings for the env (``zoo_config``; ``--set``).
    ``cpu_s`` is the CPU time of training (all threads of this process, ``time.process_time``);
    ``process_cpu_s`` the child's whole life, its reaped subprocesses (rollout workers) included.
    """
    from keras_trpo.quiet import quiet_tensorflow_import

    # As `python -m keras_trpo` does: TensorFlow's C++ start-up lines would fill the CI log once per seed.
    quiet_tensorflow_import(0)
    import gymnasium as gym
    import keras
    import tensorflow as tf

    import keras_trpo

    curve: list[tuple[int, float, float]] = []

    progress = decile_progress(f"keras_trpo {env_id} seed {seed}", steps)

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, iteration, logs=None):
            t, wall, ret = int(logs["timesteps"]), time.perf_counter() - start, float(logs["mean_return"])
            curve.append((t, wall, ret))
            progress(t, ret, wall)

    overrides = dict(overrides or {})
    try:
        agent = keras_trpo.TRPO(env_id, seed=seed, config=zoo_config(env_id), **overrides)
    except (keras_trpo.ConfigError, TypeError) as e:
        print(f"error: keras_trpo rejects the settings {overrides}: {e}", file=sys.stderr, flush=True)
        sys.exit(BAD_REQUEST)
    cpu0, start = time.process_time(), time.perf_counter()
    history = agent.fit(steps, callbacks=[Curve()], verbose=0)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    mean, std = agent.evaluate(episodes=EVAL_EPISODES, seed=EVAL_SEED)
    masks = mask_evaluation(agent, env_id, history.history)
    agent.close()
    h, n = history.history, int(agent.num_timesteps)
    space = agent.action_space
    out = dict(impl="keras_trpo", env=env_id, seed=seed, timesteps=n, eval_mean=mean, eval_std=std, wall_s=wall,
               steps_per_s=n / wall, rollout_s=float(sum(h["rollout_s"])), update_s=float(sum(h["update_s"])),
               cpu_s=cpu, process_cpu_s=process_cpu_s(), peak_mem_mb=peak_rss_mb(), curve=curve,
               config=agent.config.to_dict(), overrides=overrides,
               action_dim=int(math.prod(space.shape)) if isinstance(space, gym.spaces.Box) else None,
               versions={"keras_trpo": keras_trpo.__version__, "tensorflow": tf.__version__,
                         "keras": keras.__version__})
    out.update(masks)
    return out


def mask_evaluation(agent, env_id: str, history: dict) -> dict:
    """For an env that gives action masks (benchmarks/masks.py's tasks; {} for any other env): the final
    evaluation again through ``maskcount.masked_episodes``, the protocol every arm of that benchmark
    shares (the same episodes as ``agent.evaluate``, the env's mask handed to a masked agent's
    ``predict``, invalid actions counted against it whether the agent saw it or not), its returns
    replacing ``eval_mean``/``eval_std`` (``agent.evaluate``'s own mean and invalid count kept as
    ``library_eval_mean`` / ``library_invalid_actions_eval``, a cross-check), and the invalid actions of
    training: the ``invalid_actions`` metric summed over iterations."""
    import gymnasium as gym

    import keras_trpo.joint_limits  # noqa: F401 - registers JointLimits-v0 / JointLimitsMemory-v0
    from benchmarks.maskcount import masked_episodes
    from keras_trpo_serving.action_masks import has_masks

    probe = gym.make(env_id)
    try:
        _, info = probe.reset(seed=EVAL_SEED)
        if not has_masks(probe, info):
            return {}
    finally:
        probe.close()
    masked = bool(getattr(agent, "masked", False))
    memory: dict = {}

    def on_reset() -> None:
        memory.update(state=None, start=True)

    def act(obs, mask):
        extra = {"action_masks": mask} if masked else {}
        if agent.is_recurrent:
            action, memory["state"] = agent.predict(obs, state=memory["state"], episode_start=memory["start"],
                                                    deterministic=True, **extra)
            memory["start"] = False
            return action
        return agent.predict(obs, deterministic=True, **extra)

    library_mean, _, library_invalid = agent.evaluate(episodes=EVAL_EPISODES, seed=EVAL_SEED,
                                                      return_invalid_actions=True)
    returns, invalid = masked_episodes(env_id, act, EVAL_EPISODES, EVAL_SEED, on_reset=on_reset)
    train = history.get("invalid_actions")
    return dict(eval_mean=float(statistics.mean(returns)), eval_std=float(statistics.pstdev(returns)),
                eval_returns=[float(r) for r in returns], library_eval_mean=float(library_mean), masked=masked,
                invalid_actions_eval=int(invalid), library_invalid_actions_eval=library_invalid,
                invalid_actions_train=None if train is None else int(round(sum(float(x) for x in train))))


# ---------------------------------------------------------------- running children
def set_arguments(env_id: str, settings: dict) -> list[str]:
    """The ``NAME=VALUE`` items (``--set``, read back by ``parse_set``) of the ``settings`` that differ from
    the children's base for ``env_id`` (``zoo_config``): with them a child trains exactly ``settings``."""
    from keras_trpo.config_file import config_settings

    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    base = config_settings(zoo_config(env_id))
    return [f"{name}={value if isinstance(value, str) else json.dumps(plain(value), separators=(',', ':'))}"
            for name, value in settings.items() if plain(base.get(name)) != plain(value)]


def parse_set(items: list[str]) -> dict:
    """``["rollout_workers=2", "rollout_backend=process"]`` -> ``{"rollout_workers": 2, "rollout_backend": "process"}``.

    A value is read as JSON if it parses (numbers, true/false, null, lists such as [64,64]), else kept
    as a string. Raises ValueError for an item without ``=`` or with an empty name, or a name given twice.
    """
    out: dict = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--set expects NAME=VALUE, got {item!r}")
        if name in out:
            raise ValueError(f"--set {name} given twice")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def keras_trpo_command(env_id: str, steps: int, seed: int, overrides: dict | None = None) -> list[str]:
    """The command line of one keras_trpo child (this module with --child; run it with ``child_env()``)."""
    cmd = module_command(sys.executable, "compare", "--child", "keras_trpo", env_id, str(steps), str(seed))
    return cmd + [json.dumps(overrides)] if overrides else cmd


def sb3_command(sb3_python: str, env_id: str, steps: int, seed: int) -> list[str]:
    """The command line of one sb3-contrib child (sb3_runner.py under the sb3 Python; run it with ``child_env()``)."""
    return module_command(sb3_python, "sb3_runner", env_id, str(steps), str(seed))


def find_sb3_python(explicit: str | None) -> tuple[str | None, str]:
    """(python, "") if one imports sb3_contrib, else (None, why not)."""
    if explicit or os.environ.get("SB3_PYTHON"):
        candidates = [explicit or os.environ["SB3_PYTHON"]]  # a chosen one is not second-guessed
    else:
        candidates = [os.path.join(os.path.dirname(ROOT), "sb3venv", "bin", "python"),
                      os.path.join(ROOT, "sb3venv", "bin", "python")]
        candidates = [c for c in dict.fromkeys(candidates) if os.path.exists(c)]
        if not candidates:
            return None, "no --sb3-python, no $SB3_PYTHON and no sb3venv/bin/python found"
    for c in candidates:
        try:
            ok = subprocess.run([c, "-c", "import sb3_contrib"], capture_output=True, timeout=120).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return c, ""
    return None, f"{', '.join(candidates)} cannot import sb3_contrib"


def run_child(cmd: list[str], label: str, running: set | None = None) -> dict | None:
    """Run one training process; stream its output to stderr and return its RESULT, or None on failure.

    ``running``, if given, holds the child's Popen while it runs (so a caller can stop it on a signal).
    Raises BadRequest if the child exits with BAD_REQUEST (it has printed why).
    """
    env = child_env(TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"), PYTHONUNBUFFERED="1")
    result = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
        if running is not None:
            running.add(proc)
        for line in proc.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            else:
                sys.stderr.write(line)
    if running is not None:
        running.discard(proc)
    if proc.returncode == BAD_REQUEST:
        raise BadRequest(f"{label}: the child rejected its settings (exit code {BAD_REQUEST}); command: {shlex.join(cmd)}")
    if proc.returncode != 0 or result is None:
        print(f"error: {label} failed (exit code {proc.returncode}); command: {shlex.join(cmd)}", file=sys.stderr)
        return None
    return result


# ---------------------------------------------------------------- same hyperparameters?
def hyperparameter_differences(keras_result: dict, sb3_result: dict) -> tuple[int, list[str]]:
    """Compare keras_trpo's config with what sb3-contrib ran with; (settings checked, differences).

    For a Box action space with d dimensions sb3-contrib's KL is a mean over action dimensions
    as well as states, so its target_kl and cg_damping correspond to keras_trpo's max_kl / d and
    cg_damping / d (keras_trpo.config.default_config explains this).
    """
    k, s, d = keras_result["config"], sb3_result["hyperparameters"], keras_result.get("action_dim")
    per_dim = d if d else 1
    pairs = [("n_envs", "n_envs", 1), ("n_steps", "n_steps", 1), ("gamma", "gamma", 1),
             ("gae_lambda", "gae_lambda", 1), ("max_kl", "target_kl", per_dim), ("cg_iters", "cg_max_steps", 1),
             ("cg_damping", "cg_damping", per_dim), ("line_search_steps", "line_search_max_iter", 1),
             ("line_search_shrink", "line_search_shrinking_factor", 1), ("value_learning_rate", "learning_rate", 1),
             ("value_epochs", "n_critic_updates", 1), ("value_batch_size", "batch_size", 1),
             ("normalize_advantage", "normalize_advantage", None), ("normalize_obs", "norm_obs", None),
             ("normalize_reward", "norm_reward", None), ("hidden_sizes", "net_arch", None),
             ("activation", "activation_fn", None)]
    if s.get("norm_obs"):
        pairs.append(("obs_clip", "clip_obs", 1))
    if d and "log_std_init" in s:
        pairs.append(("log_std_init", "log_std_init", 1))
    diffs = []
    for kn, sn, scale in pairs:
        kv, sv = k.get(kn), s.get(sn)
        if scale is None:
            same = (list(kv) if isinstance(kv, (list, tuple)) else kv) == (list(sv) if isinstance(sv, (list, tuple)) else sv)
        else:
            same = kv is not None and sv is not None and math.isclose(float(kv), float(sv) * scale, rel_tol=1e-6)
        if not same:
            extra = f" (x {scale} action dims = {float(sv) * scale:g})" if scale and scale != 1 and sv is not None else ""
            diffs.append(f"{kn}={kv} vs sb3 {sn}={sv}{extra}")
    if s.get("sub_sampling_factor", 1) != 1:
        diffs.append(f"sb3 sub_sampling_factor={s['sub_sampling_factor']} (keras_trpo uses every sample)")
    return len(pairs), diffs


# ---------------------------------------------------------------- files
def read_csv(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: str, rows: list[dict], fields: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def record(out: str, r: dict, command: str) -> None:
    """Replace this (impl, env, seed)'s rows in the curves and summary CSVs."""
    key = (r["impl"], r["env"], str(r["seed"]))
    path = os.path.join(out, f"curves_{r['env']}.csv")
    rows = [x for x in read_csv(path) if (x["impl"], x["env"], x["seed"]) != key]
    rows += [{"impl": r["impl"], "env": r["env"], "seed": r["seed"], "timesteps": t, "wall_s": f"{w:.3f}",
              "return": f"{ret:.3f}"} for t, w, ret in r["curve"]]
    write_csv(path, rows, CURVE_FIELDS)
    path = os.path.join(out, "summary.csv")
    rows = [x for x in read_csv(path) if (x["impl"], x["env"], x["seed"]) != key]
    rows.append(dict(impl=r["impl"], env=r["env"], seed=r["seed"], timesteps=r["timesteps"],
                     eval_mean=f"{r['eval_mean']:.2f}", eval_std=f"{r['eval_std']:.2f}", wall_s=f"{r['wall_s']:.2f}",
                     steps_per_s=f"{r['steps_per_s']:.1f}", rollout_s=f"{r['rollout_s']:.2f}",
                     update_s=f"{r['update_s']:.2f}", peak_mem_mb=f"{r['peak_mem_mb']:.1f}",
                     date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), machine=machine_summary(),
                     command=command))
    write_csv(path, rows, SUMMARY_FIELDS)


# ---------------------------------------------------------------- tables
def _fmt_pm(mean: float, std: float) -> str:
    """``mean ± std`` with one precision for both: whole numbers for returns of 100 or more."""
    digits = 0 if abs(mean) >= 100 else 1
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def run_table(results: list[dict]) -> str:
    """Compact plain-text table of this invocation's runs, with per-impl means."""
    head = ("impl", "seed", "steps", "eval", "wall s", "steps/s", "rollout s", "update s", "peak MB")
    body = []
    for r in results:
        body.append((r["impl"], str(r["seed"]), str(r["timesteps"]), f"{r['eval_mean']:.1f} ± {r['eval_std']:.1f}",
                     f"{r['wall_s']:.1f}", f"{r['steps_per_s']:.0f}", f"{r['rollout_s']:.1f}", f"{r['update_s']:.1f}",
                     f"{r['peak_mem_mb']:.0f}"))
    for impl in dict.fromkeys(r["impl"] for r in results):
        rs = [r for r in results if r["impl"] == impl]
        if len(rs) > 1:
            m = lambda k: statistics.mean(r[k] for r in rs)  # noqa: E731
            body.append((impl, "mean", "", f"{m('eval_mean'):.1f} ± {statistics.pstdev(r['eval_mean'] for r in rs):.1f}",
                         f"{m('wall_s'):.1f}", f"{m('steps_per_s'):.0f}", f"{m('rollout_s'):.1f}",
                         f"{m('update_s'):.1f}", f"{m('peak_mem_mb'):.0f}"))
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body)


def readme_table(out: str, envs: list[str] | None = None) -> str:
    """Markdown: per (env, timesteps), final evaluation return and steps/s of each impl, from summary.csv only."""
    rows = read_csv(os.path.join(out, "summary.csv"))
    if envs:
        rows = [r for r in rows if r["env"] in envs]
    if not rows:
        return f"(no rows in {os.path.join(out, 'summary.csv')})"
    groups = list(dict.fromkeys((r["env"], r["timesteps"]) for r in rows))
    lines = ["| env | timesteps | seeds | keras_trpo return | sb3-contrib return | keras_trpo steps/s "
             "| sb3-contrib steps/s | speed ratio |",
             "|---|--:|---|--:|--:|--:|--:|--:|"]
    for env, steps in groups:
        agg = {}
        for impl in ("keras_trpo", "sb3-contrib"):
            rs = sorted((r for r in rows if (r["env"], r["timesteps"], r["impl"]) == (env, steps, impl)),
                        key=lambda r: int(r["seed"]))
            if rs:
                ev = [float(r["eval_mean"]) for r in rs]
                agg[impl] = dict(seeds=",".join(r["seed"] for r in rs), mean=statistics.mean(ev),
                                 std=statistics.pstdev(ev), sps=statistics.mean(float(r["steps_per_s"]) for r in rs))
        k, s = agg.get("keras_trpo"), agg.get("sb3-contrib")
        seeds = " / ".join(dict.fromkeys(a["seeds"] for a in agg.values()))
        ret = lambda a: _fmt_pm(a["mean"], a["std"]) if a else "–"  # noqa: E731
        sps = lambda a: f"{a['sps']:,.0f}" if a else "–"  # noqa: E731
        ratio = f"{k['sps'] / s['sps']:.2f}×" if k and s else "–"
        lines.append(f"| {env} | {int(steps):,} | {seeds} | {ret(k)} | {ret(s)} | {sps(k)} | {sps(s)} | {ratio} |")
    dates = sorted(set(r["date"] for r in rows))
    machines = sorted(set(r["machine"] for r in rows))
    commands = list(dict.fromkeys(r["command"] for r in rows))
    lines += ["",
              f"Return: mean ± std (population) over training seeds of the final evaluation, {EVAL_EPISODES} "
              f"deterministic episodes on env seeds {EVAL_SEED}–{EVAL_SEED + EVAL_EPISODES - 1} with normalisation "
              "statistics frozen. steps/s: environment steps over training wall time (updates included), mean over "
              "seeds; speed ratio = keras_trpo steps/s ÷ sb3-contrib steps/s. "
              f"Measured {', '.join(dates)} on {'; '.join(machines)}, one run at a time.",
              "", "```"] + commands + ["```"]
    return "\n".join(lines)


# ---------------------------------------------------------------- main
def _table_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare table",
                                description="Markdown results table from OUT/summary.csv")
    p.add_argument("--readme-table", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("envs", nargs="*", metavar="ENV", help="only these envs (default: all in summary.csv)")
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--env", nargs="+", default=[], help="only these envs (same as the positional ENV)")
    a = p.parse_args(argv)
    print(readme_table(a.out, a.envs + a.env or None))
    return 0


def main(argv: list[str]) -> int:
    if argv[:2] == ["--child", "keras_trpo"]:
        overrides = json.loads(argv[5]) if len(argv) > 5 else None
        print("RESULT " + json.dumps(keras_trpo_child(argv[2], int(argv[3]), int(argv[4]), overrides)), flush=True)
        return 0
    if argv[:1] == ["table"]:
        return _table_main(argv[1:])
    if "--readme-table" in argv:
        return _table_main(argv)
    if argv[:1] == ["plot"]:
        from benchmarks.plot_compare import main as plot_main

        sys.argv = ["plot_compare.py"] + argv[1:]
        plot_main()
        return 0

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env", help="gymnasium env id, e.g. CartPole-v1, Hopper-v5")
    p.add_argument("--timesteps", type=float, required=True, help="environment steps per run (1e6 is fine)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--impl", nargs="+", choices=list(IMPLS), default=list(IMPLS))
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--sb3-python", default=None, help="a Python that imports sb3_contrib (default: see below)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a TRPOConfig field for keras_trpo, e.g. --set rollout_backend=process (repeatable)")
    p.add_argument("--readme-table", action="store_true", help="print the Markdown table from OUT/summary.csv and exit")
    a = p.parse_args(argv)
    if a.timesteps <= 0:
        p.error("--timesteps must be positive")
    try:
        overrides = parse_set(a.set)
    except ValueError as e:
        p.error(str(e))
    steps = int(a.timesteps)
    os.makedirs(a.out, exist_ok=True)
    impls = list(dict.fromkeys(a.impl))
    sb3_py = None
    if "sb3" in impls:
        sb3_py, why = find_sb3_python(a.sb3_python)
        if sb3_py is None:
            print(f"notice: skipping sb3-contrib: {why}. Set it up as in benchmarks/README.md and pass --sb3-python "
                  "or set SB3_PYTHON.", file=sys.stderr)
            impls.remove("sb3")
    command = "python -m benchmarks.compare " + shlex.join(argv)
    results, failures, checked = [], 0, False
    for seed in a.seeds:
        by_impl = {}
        for impl in impls:
            if impl == "keras_trpo":
                cmd = keras_trpo_command(a.env, steps, seed, overrides)
            else:
                cmd = sb3_command(sb3_py, a.env, steps, seed)
            try:
                r = run_child(cmd, f"{IMPLS[impl]} {a.env} seed {seed}")
            except BadRequest as e:
                print(f"error: {e}", file=sys.stderr)
                return BAD_REQUEST
            if r is None:
                failures += 1
                continue
            record(a.out, r, command)
            results.append(r)
            by_impl[impl] = r
            print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()
                              if k not in ("curve", "config", "hyperparameters", "action_dim", "overrides")}),
                  flush=True)
        if not checked and len(by_impl) == 2:
            checked = True
            n, diffs = hyperparameter_differences(by_impl["keras_trpo"], by_impl["sb3"])
            if diffs:
                print(f"notice: {a.env}: keras_trpo and sb3-contrib hyperparameters differ: " + "; ".join(diffs),
                      flush=True)
            else:
                print(f"{a.env}: same hyperparameters in keras_trpo and sb3-contrib ({n} settings checked)", flush=True)
    if results:
        from benchmarks.plot_compare import plot

        print(plot(a.out, a.env))
        print()
        print(run_table(results))
        print()
        print(readme_table(a.out, [a.env]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

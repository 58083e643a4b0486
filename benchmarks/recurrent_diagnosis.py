"""Per-iteration diagnostics of the recurrent learner on a masked task (issue 28, must-have 2).

  python -m benchmarks.recurrent_diagnosis run ENV STEPS SEED [--arm NAME] [--set NAME=VALUE ...] [--out DIR]
                                           [--eval-every 10] [--eval-episodes 5] [--kl-schedule linear --kl-final F]
  python -m benchmarks.recurrent_diagnosis table [--out DIR] [--arm NAME ...]
  python -m benchmarks.recurrent_diagnosis plot [--out DIR] [--arm NAME] [--figure PATH]
  python -m benchmarks.recurrent_diagnosis compare [--out DIR] [--stored benchmarks/results/recurrent] [--env ENV]

``run``: one training run of keras_trpo (the env's preset, plus ``--set`` overrides) written to
``OUT/ARM/ENV/seed_N.json`` (a row per iteration, the final evaluation as seeds.py's: 10 deterministic
episodes on env seeds 10000-10009). Nothing here changes the training: the extra numbers are read
from the rollout and from the models (no random draws), so a run reproduces the seeds.py run of
the same seed and settings.

Columns per iteration, besides the agent's logs (kl, line_search_steps, step_accepted, entropy,
cg_iterations, surrogate_improvement, expected_improvement, value_loss, explained_variance,
mean_return, mean_length):

- acting vs learning: ``act_learn_kl``, mean KL(the NumPy actor's distribution that drew the actions ||
  the learner's pi_old on the training sequences, from their stored initial states); ``zero_state_kl``,
  the same against pi_old from zero initial states (how much the carried state matters);
- the update: ``kl_check`` (KL(pi_old || pi_new) recomputed on the batch), ``argmax_flip`` (fraction of steps
  whose most probable action changed), ``p_max`` (mean probability of the most probable action, before);
- the critic: ``ev_after`` (explained variance of the critic's values after its fit, on the same
  rollout, same initial states), ``adv_std`` / ``ret_mean`` / ``ret_std`` / ``v_mean`` (GAE's
  advantages before normalising, its returns = the critic's targets, the critic's values);
- states: ``h_abs`` / ``c_abs`` / ``c_max`` (policy cell: mean |h|, mean |c|, max |c| over the states the
  actions were computed from), ``vc_abs`` (critic's mean |c|), ``forget_bias`` (mean forget-gate bias);
- sequences: ``seq_len`` (the update's L), ``ep_len_rollout`` (mean length of the episodes finished in
  this rollout), ``mid_episode_seq`` (fraction of training sequences starting mid-episode, i.e. from a
  carried, non-zero state), ``starts_in_seq`` (episode starts inside sequences, per sequence);
- ``max_kl_now``: the trust region this iteration used (``--kl-schedule linear``: ``max_kl`` falling
  linearly with the timesteps done, from ``max_kl`` at the start to ``F * max_kl`` at ``STEPS``, as the zoo's
  ``lin_`` schedules anneal RecurrentPPO's learning rate and clip range to zero; the learner reads it from a
  variable, so it is the same graph every iteration -- a test harness, not a keras_trpo setting);
- ``det_return``: every ``--eval-every`` iterations, the mean return of ``--eval-episodes``
  deterministic episodes (env seeds 20000+, statistics frozen; no effect on training).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

from benchmarks.benchutil import RESULTS
from benchmarks.diagnose import categorical_kl, gaussian_kl, parse_set
from keras_trpo import quiet
from keras_trpo_serving.files import atomic_write_text

with quiet.filtered_stderr():
    import numpy as np

    import keras_trpo
    import keras_trpo.optim.train_step as train_step_module
    from keras_trpo.plan.numpy_policy import NumpyPolicy
    from keras_trpo.rollouts.buffer import check_length, explained_variance

DEFAULT_OUT = os.path.join(RESULTS, "ahead", "cartpolenovel")


def kl_of(p: dict, q: dict) -> np.ndarray:
    return gaussian_kl(p, q) if "mean" in p else categorical_kl(p, q)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


class ScheduledConfig:
    """The learner's config with ``max_kl`` a ``tf.Variable`` (read in the graph, so changing it needs no retrace)."""

    def __init__(self, config, variable):
        self._config, self.max_kl = config, variable

    def __getattr__(self, name):
        return getattr(self._config, name)


class RecurrentDiagnosedTRPO(keras_trpo.TRPO):
    """``TRPO`` that records what the recurrent update sees; the training is unchanged."""

    eval_every, eval_episodes = 10, 5
    kl_schedule, kl_final, total_steps, kl_var = "constant", 1.0, 1, None

    def _init_state(self) -> None:
        super()._init_state()
        self.diag: dict = {}

    def _np(self, d) -> dict:
        return {k: np.asarray(v) for k, v in d.items()}

    def _learn(self, r):
        d = self.diag = {}
        units = self.config.recurrent_units
        T, E = r.rewards.shape
        # What the actor computed when it drew the actions: re-run the NumPy plan that acted.
        actor = NumpyPolicy(self.policy.rollout_source())
        acting = []
        for t in range(T):
            p, _ = actor.step(r.obs[t], r.states[t], r.starts[t])
            acting.append(p)
        self._acting = {k: np.stack([a[k] for a in acting]) if k != "log_std" else acting[0][k] for k in acting[0]}
        s = r.states
        d["h_abs"] = float(np.mean(np.abs(s[..., :units])))
        d["c_abs"] = float(np.mean(np.abs(s[..., units:])))
        d["c_max"] = float(np.max(np.abs(s[..., units:])))
        L = check_length(T, self.config.recurrent_sequence_length)
        d["seq_len"] = float(L)
        d["ep_len_rollout"] = float(np.mean(r.episode_lengths)) if r.episode_lengths else float("nan")
        chunk_starts = r.starts[::L]  # [T/L, E]: does each sequence begin an episode
        d["mid_episode_seq"] = float(np.mean(~chunk_starts))
        inner = r.starts.reshape(T // L, L, E)[:, 1:].sum(axis=1)
        d["starts_in_seq"] = float(np.mean(inner))
        layer = self.policy_model.get_layer("policy_recurrent")
        b = np.asarray(layer.bias)
        d["forget_bias"] = float(np.mean(b[units:2 * units])) if layer.cell == "lstm" else float("nan")
        self._rollout = r
        if self.kl_var is not None:
            progress = min(self.num_timesteps / self.total_steps, 1.0)  # timesteps done before this update
            self.kl_var.assign(self.config.max_kl * (1.0 - (1.0 - self.kl_final) * progress))
            d["max_kl_now"] = float(self.kl_var.numpy())
        logs = super()._learn(r)
        logs.update(self.diag)
        logs["det_return"] = float("nan")
        if self.eval_every and self.iterations % self.eval_every == 0:
            logs["det_return"] = float(self.evaluate(self.eval_episodes, seed=20_000 + self.iterations)[0])
        return logs


def _instrument(agent: RecurrentDiagnosedTRPO) -> None:
    learner = agent.learner
    orig_policy_update, orig_value_update = learner.policy_update, learner.value_update
    orig_gae = train_step_module.compute_gae

    def to_steps(params: dict, n_steps: int, n_envs: int, L: int) -> dict:
        """Learner rows (sequence-major [E*(T/L)*L]) -> [T, E, k]."""
        out = {}
        for k, v in params.items():
            v = np.asarray(v)
            if k == "log_std" and v.ndim == 1:
                out[k] = v
                continue
            v = v.reshape(n_envs, n_steps, -1)
            out[k] = np.swapaxes(v, 0, 1)
        return out

    def policy_update(obs, actions, advantages, masks=None):
        d, r = agent.diag, agent._rollout
        T, E = r.rewards.shape
        L = obs[0].shape[1]
        old = to_steps(agent._np(learner._params(tuple(np.asarray(x, np.float32) for x in obs))), T, E, L)
        zero = (obs[0], obs[1], np.zeros_like(obs[2]))
        old_zero = to_steps(agent._np(learner._params(tuple(np.asarray(x, np.float32) for x in zero))), T, E, L)
        flat = lambda p: {k: (v.reshape(-1, v.shape[-1]) if v.ndim == 3 else v) for k, v in p.items()}  # noqa: E731
        a, o, oz = flat(agent._acting), flat(old), flat(old_zero)
        d["act_learn_kl"] = float(np.mean(kl_of(a, o)))
        d["zero_state_kl"] = float(np.mean(kl_of(o, oz)))
        if "logits" in o:
            d["p_max"] = float(np.mean(_softmax(o["logits"]).max(-1)))
        logs = orig_policy_update(obs, actions, advantages, masks)
        new = flat(to_steps(agent._np(learner._params(tuple(np.asarray(x, np.float32) for x in obs))), T, E, L))
        d["kl_check"] = float(np.mean(kl_of(o, new)))
        if "logits" in o:
            d["argmax_flip"] = float(np.mean(o["logits"].argmax(-1) != new["logits"].argmax(-1)))
        return logs

    def value_update(obs, returns, batches):
        loss = orig_value_update(obs, returns, batches)
        v, states = agent.policy.sequence_values(*(np.asarray(x, np.float32) for x in obs))
        agent.diag["ev_after"] = explained_variance(v, np.asarray(returns))
        agent.diag["vc_abs"] = float(np.mean(np.abs(states[..., agent.config.recurrent_units:])))
        return loss

    def compute_gae(rewards, values, *args, **kwargs):
        advantages, returns = orig_gae(rewards, values, *args, **kwargs)
        agent.diag.update(adv_std=float(np.std(advantages)), ret_mean=float(np.mean(returns)),
                          ret_std=float(np.std(returns)), v_mean=float(np.mean(values)))
        return advantages, returns

    learner.policy_update, learner.value_update = policy_update, value_update
    train_step_module.compute_gae = compute_gae


def run(env_id: str, steps: int, seed: int, overrides: dict, eval_every: int, eval_episodes: int,
        kl_schedule: str = "constant", kl_final: float = 1.0) -> dict:
    agent = RecurrentDiagnosedTRPO(env_id, seed=seed, **overrides)
    agent.eval_every, agent.eval_episodes = eval_every, eval_episodes
    if kl_schedule == "linear":
        import tensorflow as tf
        agent.kl_schedule, agent.kl_final, agent.total_steps = kl_schedule, kl_final, steps
        agent.kl_var = tf.Variable(agent.config.max_kl, trainable=False, dtype=tf.float32)
        agent.learner.config = ScheduledConfig(agent.config, agent.kl_var)
    _instrument(agent)
    start = time.perf_counter()
    history = agent.fit(steps, verbose=0)
    wall = time.perf_counter() - start
    mean, std = agent.evaluate(10)
    agent.close()
    n = len(history.epoch)
    rows = [dict(iteration=i, **{k: float(v[i]) for k, v in history.history.items() if len(v) == n}) for i in range(n)]
    det = [x for x in history.history.get("det_return", []) if x == x]
    return dict(env=env_id, seed=seed, overrides=overrides, kl_schedule=kl_schedule, kl_final=kl_final,
                timesteps=agent.num_timesteps,
                config=agent.config.to_dict(), eval_mean=mean, eval_std=std, wall_s=wall, rows=rows,
                det_return=det)


def cmd_run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recurrent_diagnosis run")
    p.add_argument("env")
    p.add_argument("steps", type=float)
    p.add_argument("seed", type=int)
    p.add_argument("--arm", default="preset")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--kl-schedule", choices=["constant", "linear"], default="constant")
    p.add_argument("--kl-final", type=float, default=0.0, help="linear: max_kl at the end, as a fraction of max_kl")
    a = p.parse_args(argv)
    path = os.path.join(a.out, a.arm, a.env, f"seed_{a.seed}.json")
    if os.path.exists(path):
        print(f"stored: {path}")
        return 0
    result = run(a.env, int(a.steps), a.seed, parse_set(a.set), a.eval_every, a.eval_episodes, a.kl_schedule,
                 a.kl_final if a.kl_schedule == "linear" else 1.0)
    atomic_write_text(path, json.dumps(result))
    print(f"{a.arm} {a.env} seed {a.seed}: eval {result['eval_mean']:.1f} +- {result['eval_std']:.1f}, "
          f"{result['wall_s']:.0f} s -> {path}", flush=True)
    return 0


def load(out: str, arms: list[str] | None = None) -> dict:
    runs: dict = {}
    for path in sorted(glob.glob(os.path.join(out, "*", "*", "seed_*.json"))):
        arm, env = path.split(os.sep)[-3:-1]
        if arms and arm not in arms:
            continue
        with open(path) as f:
            runs.setdefault((arm, env), []).append(json.load(f))
    return runs


COLUMNS = ["kl", "line_search_steps", "step_accepted", "entropy", "p_max", "argmax_flip", "explained_variance",
           "ev_after", "adv_std", "ret_std", "h_abs", "c_abs", "c_max", "act_learn_kl", "zero_state_kl",
           "ep_len_rollout", "mid_episode_seq"]


def series(run: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(timesteps, values) of a column; ``det_return`` of the first runs is only in the run's own list
    (one value every 10 iterations from iteration 0)."""
    rows = run["rows"]
    ts = np.array([r["timesteps"] for r in rows], float)
    if key == "det_return" and not any("det_return" in r for r in rows):
        det = run.get("det_return") or []
        return ts[::10][:len(det)], np.array(det, float)
    return ts, np.array([r.get(key, np.nan) for r in rows], float)


def phase_means(run: dict, key: str, edges=(0, 0.25, 0.5, 0.75, 1.0)) -> list[float]:
    ys = np.array([r.get(key, np.nan) for r in run["rows"]], float)
    n = len(ys)
    return [float(np.nanmean(ys[int(a * n):max(int(b * n), int(a * n) + 1)])) for a, b in zip(edges[:-1], edges[1:])]


def cmd_table(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recurrent_diagnosis table")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--arm", nargs="*", default=None)
    p.add_argument("--columns", nargs="*", default=COLUMNS)
    a = p.parse_args(argv)
    for (arm, env), runs in sorted(load(a.out, a.arm).items()):
        print(f"\n### {arm} {env}: per seed, the mean over each quarter of training (q1 / q2 / q3 / q4)\n")
        print("| seed | eval | " + " | ".join(a.columns) + " |")
        print("|--:|--:|" + "--:|" * len(a.columns))
        for run in sorted(runs, key=lambda r: r["seed"]):
            cells = []
            for c in a.columns:
                q = phase_means(run, c)
                fmt = "{:.3g}"
                cells.append("/".join(fmt.format(x) for x in q))
            print(f"| {run['seed']} | {run['eval_mean']:.0f} | " + " | ".join(cells) + " |")
    return 0


PLOT = [("mean_return", "training return (last 100 episodes)"), ("det_return", "deterministic return (5 ep.)"),
        ("kl", "KL reached (target max_kl)"), ("line_search_steps", "line-search tries"),
        ("entropy", "entropy of pi_old"), ("explained_variance", "explained variance (before fit)"),
        ("c_abs", "policy cell mean |c|"), ("act_learn_kl", "KL(acting || learner's pi_old)"),
        ("adv_std", "advantage std (before normalising)")]


def cmd_plot(argv: list[str]) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(prog="python -m benchmarks.recurrent_diagnosis plot")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--arm", nargs="+", default=["preset"], help="one arm: colour by outcome; several: colour by arm")
    p.add_argument("--seeds", nargs="*", type=int, default=None)
    p.add_argument("--env", default="CartPoleNoVel-v1")
    p.add_argument("--threshold", type=float, default=300.0, help="final evaluation that counts as success")
    p.add_argument("--figure", default=None)
    a = p.parse_args(argv)
    found = load(a.out, a.arm)
    runs = [(arm, r) for arm in a.arm for r in sorted(found.get((arm, a.env), []), key=lambda r: r["seed"])
            if a.seeds is None or r["seed"] in a.seeds]
    if not runs:
        print("no runs")
        return 1
    palette = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
    styles = ["-", "--", ":", "-."]
    seeds = sorted({r["seed"] for _, r in runs})
    fig, axes = plt.subplots(3, 3, figsize=(14, 10))
    for ax, (key, title) in zip(axes.flat, PLOT):
        for arm, run in runs:
            ts, ys = series(run, key)
            ok = np.isfinite(ys)
            if key == "det_return":
                ts, ys, ok = ts[ok], ys[ok], ok[ok]
            elif key != "mean_return" and ok.sum() > 10:
                k = 10  # trailing mean over 10 iterations
                c = np.convolve(np.where(ok, ys, 0), np.ones(k), "full")[:len(ys)]
                m = np.convolve(ok.astype(float), np.ones(k), "full")[:len(ys)]
                ys, ok = c / np.maximum(m, 1), m > 0
            if len(a.arm) == 1:
                color, ls = ("tab:blue" if run["eval_mean"] >= a.threshold else "tab:red"), "-"
            else:
                color, ls = palette[a.arm.index(arm) % len(palette)], styles[seeds.index(run["seed"]) % len(styles)]
            ax.plot(ts[ok], ys[ok], color=color, ls=ls, alpha=0.75, lw=1,
                    label=f"{arm} seed {run['seed']} (eval {run['eval_mean']:.0f})")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if key == "kl":
            ax.axhline(runs[0][1]["config"]["max_kl"], color="k", ls=":", lw=1)
    axes.flat[0].legend(fontsize=6)
    what = (f"blue = final eval >= {a.threshold:.0f}, red = below" if len(a.arm) == 1
            else "colour = arm, line style = seed")
    fig.suptitle(f"{a.env}, {', '.join(a.arm)}: {what} (10-iteration trailing means except the returns)", fontsize=10)
    fig.tight_layout()
    path = a.figure or os.path.join(a.out, f"{'_'.join(a.arm)}_{a.env}.png")
    fig.savefig(path, dpi=80)
    print(path)
    return 0


def cmd_compare(argv: list[str]) -> int:
    """The arms run here beside the stored benchmark arms (benchmarks/recurrent.py's): per seed, and the
    IQM and mean of the final evaluations with 95 % stratified-bootstrap intervals (stats.py's rliable)."""
    from benchmarks.recurrent import arm_scores
    from benchmarks.stats import estimates, fmt_ci

    p = argparse.ArgumentParser(prog="python -m benchmarks.recurrent_diagnosis compare")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--stored", default=os.path.join(RESULTS, "recurrent"))
    p.add_argument("--env", default="CartPoleNoVel-v1")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=50_000)
    p.add_argument("--extra", nargs="*",
                   default=[os.path.join(RESULTS, "ahead", d) for d in ("recurrent_klin_nreward", "recurrent_klin")],
                   help="more benchmarks/recurrent.py-layout folders (OUT/ARM/IMPL/ENV/seed_N.json), e.g. candidates")
    a = p.parse_args(argv)
    arms: dict[str, dict[int, float]] = {}
    for arm, records in arm_scores(a.stored, [(a.env, a.steps)]).items():
        arms[f"stored {arm}"] = {r["seed"]: r["eval_mean"] for r in records[a.env]}
    for folder in a.extra:
        for arm, records in arm_scores(folder, [(a.env, a.steps)]).items():
            arms[f"{os.path.basename(folder.rstrip(os.sep))} {arm}"] = {r["seed"]: r["eval_mean"] for r in records[a.env]}
    for (arm, env), runs in sorted(load(a.out).items()):
        if env == a.env:
            arms[arm] = {r["seed"]: r["eval_mean"] for r in runs if r["timesteps"] >= a.steps}
    seeds = sorted({s for v in arms.values() for s in v})
    print(f"{a.env} at {a.steps:,} steps: final evaluation (10 deterministic episodes, env seeds 10000-10009)\n")
    print("| arm | n | IQM [95% CI] | mean [95% CI] | min | " + " | ".join(f"s{s}" for s in seeds) + " |")
    print("|---|--:|--:|--:|--:|" + "--:|" * len(seeds))
    for arm, by_seed in arms.items():
        if not by_seed:
            continue
        scores = np.array([[v] for _, v in sorted(by_seed.items())], float)
        if len(scores) >= 2:
            point, ci = estimates({arm: scores}, a.reps)[arm]
            iqm, mean = fmt_ci(point[0], *ci[:, 0]), fmt_ci(point[1], *ci[:, 1])
        else:
            iqm = mean = f"{scores[0, 0]:.0f}"
        cells = " | ".join(f"{by_seed[s]:.0f}" if s in by_seed else "" for s in seeds)
        print(f"| {arm} | {len(by_seed)} | {iqm} | {mean} | {scores.min():.0f} | {cells} |")
    return 0


def main(argv: list[str]) -> int:
    cmds = {"run": cmd_run, "table": cmd_table, "plot": cmd_plot, "compare": cmd_compare}
    if not argv or argv[0] not in cmds:
        print(__doc__)
        return 2
    return cmds[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

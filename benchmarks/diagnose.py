"""Per-iteration diagnostics of keras_trpo, and the isolating experiment for the locomotion gap (issue 17).

  python -m benchmarks.diagnose ENV STEPS SEED --mode in_model|vecnormalize [--set NAME=VALUE ...] [--out DIR]

One training run; one JSON file ``OUT/MODE/ENV/seed_N.json`` with a row per iteration and the final
evaluation (10 deterministic episodes on env seeds 10000..10009, observation statistics frozen),
written atomically. A stored file is not run again.

Modes (everything else is the env's default TRPOConfig, i.e. the zoo preset):
- ``in_model``: keras_trpo as it is: observation statistics inside the model, updated from each
  rollout after the policy update.
- ``vecnormalize``: observations normalised *outside* the model, per env step, exactly as SB3's
  VecNormalize does (running mean/var shared by all envs, updated with every observation the envs
  return, reset ones included, clip 10, epsilon 1e-8), and ``normalize_obs=False`` in the model.
  Inline rollout backend (the envs share one statistics object in this process).

Columns per iteration: the agent's logs (mean_return, kl, surrogate_improvement, explained_variance,
value_loss, entropy, ...) plus ``policy_std`` (mean exp(log_std)), ``adv_std`` (the GAE advantages'
std before normalisation), ``obs_mean_abs`` / ``obs_std_mean`` (the normaliser's statistics,
averaged over dimensions) and ``norm_kl``: mean over the batch's observations of
KL(pi before the statistics update || pi after it), i.e. how far the normaliser's update alone
moves the policy (0 in ``vecnormalize``, whose policy never sees its statistics change within an update).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks.benchutil import RESULTS
from keras_trpo import quiet
from keras_trpo_serving.files import atomic_write_text

with quiet.filtered_stderr():
    import gymnasium as gym
    import numpy as np

    import keras_trpo
    import keras_trpo.optim.train_step as train_step_module
    from keras_trpo.plan.keras_reader import read_plan
    from keras_trpo.plan.numpy_policy import NumpyPolicy
    from keras_trpo.running_stats import RunningMeanStd

DEFAULT_OUT = os.path.join(RESULTS, "diagnostics")
MODES = ("in_model", "vecnormalize")


class SharedObsNormalize(gym.ObservationWrapper):
    """VecNormalize's observation half on one env of several that share ``stats``."""

    def __init__(self, env: gym.Env, stats: RunningMeanStd, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__(env)
        self.stats, self.clip, self.epsilon, self.training = stats, clip, epsilon, True

    def observation(self, obs):
        if self.training:
            self.stats.update(np.asarray(obs, np.float64)[None])
        z = (np.asarray(obs, np.float64) - self.stats.mean) / np.sqrt(self.stats.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)


def gaussian_kl(p: dict, q: dict) -> np.ndarray:
    """KL(p || q) of diagonal Gaussians ``{"mean": [B, d], "log_std": [d] or [B, d]}`` -> ``[B]``."""
    ls_p, ls_q = np.broadcast_to(p["log_std"], p["mean"].shape), np.broadcast_to(q["log_std"], q["mean"].shape)
    var_p, var_q = np.exp(2 * ls_p), np.exp(2 * ls_q)
    return np.sum(ls_q - ls_p + (var_p + (p["mean"] - q["mean"]) ** 2) / (2 * var_q) - 0.5, axis=-1)


def categorical_kl(p: dict, q: dict) -> np.ndarray:
    """KL(p || q) of categoricals ``{"logits": [B, n]}`` -> ``[B]``."""
    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))
    lp, lq = log_softmax(p["logits"].astype(np.float64)), log_softmax(q["logits"].astype(np.float64))
    return np.sum(np.exp(lp) * (lp - lq), -1)


class DiagnosedTRPO(keras_trpo.TRPO):
    """``TRPO`` that records what the update sees; numbers only, the training is unchanged."""

    def _init_state(self) -> None:
        super()._init_state()
        self.diag: dict = {}
        self._batch_obs = None

    def _learn(self, r):
        self._batch_obs = r.obs.reshape((-1,) + r.obs.shape[2:])
        logs = super()._learn(r)
        logs.update(self.diag)
        log_std = self.actor.params(self._batch_obs[:1]).get("log_std")
        logs["policy_std"] = float(np.mean(np.exp(log_std))) if log_std is not None else float("nan")
        logs["obs_mean_abs"] = float(np.mean(np.abs(self.obs_rms.mean)))
        logs["obs_std_mean"] = float(np.mean(np.sqrt(self.obs_rms.var)))
        return logs


def _record_norm_kl(agent: DiagnosedTRPO):
    """Wrap the policy's ``push_obs_statistics`` so the KL the statistics update alone causes is logged."""
    original = agent.policy.push_obs_statistics

    def push_obs_statistics() -> None:
        before = NumpyPolicy(read_plan(agent.policy_model, agent.family))(agent._batch_obs)
        original()
        after = NumpyPolicy(read_plan(agent.policy_model, agent.family))(agent._batch_obs)
        kl = gaussian_kl(before, after) if "mean" in before else categorical_kl(before, after)
        agent.diag["norm_kl"] = float(np.mean(kl))

    agent.policy.push_obs_statistics = push_obs_statistics


def _record_gae(agent: DiagnosedTRPO):
    """Wrap the train step's ``compute_gae`` so the advantages' scale is logged."""
    original = train_step_module.compute_gae

    def compute_gae(*args, **kwargs):
        advantages, returns = original(*args, **kwargs)
        agent.diag["adv_std"] = float(np.std(advantages))
        agent.diag["return_std"] = float(np.std(returns))
        return advantages, returns

    train_step_module.compute_gae = compute_gae


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def run(env_id: str, steps: int, seed: int, mode: str, overrides: dict) -> dict:
    stats = None
    if mode == "vecnormalize":
        stats = RunningMeanStd(gym.make(env_id).observation_space.shape)
        wrappers: list[SharedObsNormalize] = []

        def factory():
            w = SharedObsNormalize(gym.make(env_id), stats)
            wrappers.append(w)
            return w

        probe = gym.make(env_id)
        config = keras_trpo.default_config(env_id, probe.action_space)  # the preset, as by id
        agent = DiagnosedTRPO(factory, seed=seed, config=config, normalize_obs=False, rollout_backend="inline",
                              rollout_workers=1, **overrides)
        agent.env_id = env_id
    else:
        agent = DiagnosedTRPO(env_id, seed=seed, **overrides)
    _record_gae(agent)
    _record_norm_kl(agent)
    start = time.perf_counter()
    history = agent.fit(steps, verbose=0)
    wall = time.perf_counter() - start
    if stats is not None:
        env = SharedObsNormalize(gym.make(env_id), stats)
        env.training = False  # frozen, as VecNormalize(training=False) in sb3_runner's evaluation
        mean, std = agent.evaluate(10, env=env)
    else:
        mean, std = agent.evaluate(10)
    agent.close()
    rows = [dict(iteration=i, **{k: float(v[i]) for k, v in history.history.items()}) for i in range(len(history.epoch))]
    return dict(env=env_id, seed=seed, mode=mode, overrides=overrides, timesteps=agent.num_timesteps,
                config=agent.config.to_dict(), eval_mean=mean, eval_std=std, wall_s=wall, rows=rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env")
    p.add_argument("steps", type=float)
    p.add_argument("seed", type=int)
    p.add_argument("--mode", choices=MODES, default="in_model")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--arm", default=None, help="name of the results folder (default: the mode)")
    p.add_argument("--out", default=DEFAULT_OUT)
    a = p.parse_args(argv)
    path = os.path.join(a.out, a.arm or a.mode, a.env, f"seed_{a.seed}.json")
    if os.path.exists(path):
        print(f"stored: {path}")
        return 0
    result = run(a.env, int(a.steps), a.seed, a.mode, parse_set(a.set))
    atomic_write_text(path, json.dumps(result))
    print(f"{a.arm or a.mode} {a.env} seed {a.seed}: eval {result['eval_mean']:.1f} +- {result['eval_std']:.1f}, "
          f"last mean_return {result['rows'][-1]['mean_return']:.1f}, {result['wall_s']:.0f} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

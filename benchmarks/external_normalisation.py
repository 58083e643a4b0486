"""keras_trpo with sb3-contrib's data pipeline: observations normalised step by step outside the model.

  python -m benchmarks.external_normalisation ENV STEPS SEED [--out DIR] [--reward-scaling step|rollout]
                                            [--shared-stats {step,rollout}]

The other half of the Swimmer-v5 screen (issue 28, ``results/ahead/swimmer/README.md``). keras_trpo's own
normaliser sits in the model and its statistics move once per rollout, after the update, so that pi_old is
the policy that acted; VecNormalize (sb3-contrib's) moves them at every step and stores the observations as
normalised then. Here each env is wrapped in gymnasium's ``NormalizeObservation`` (per-step running statistics,
as VecNormalize; one per env where VecNormalize shares them across envs) and clipped to +-10, and the agent
gets ``normalize_obs=False``: it learns from the observations as they were normalised when it acted, exactly
sb3-contrib's way. Rewards: ``reward_scaling="step"`` (VecNormalize's per-step return statistics) by default.
Everything else is the zoo's settings for ENV.

``--shared-stats`` replaces gymnasium's wrapper by ``SharedObservationStats``: one set of statistics for all the
envs (as VecNormalize and keras_trpo's normaliser keep), moved at every step (``step``) or frozen during a rollout
and given all of it after the update (``rollout``: keras_trpo's in-model timing, from mean 0 and variance 1 as
``obs_norm_init="identity"``). The two tell whether it is the per-step timing that matters, or something else
about the in-model normaliser.

Writes ``OUT/seed_N/metrics.csv`` (one row per iteration, the agent's logs, as ``keras-trpo train`` writes it)
and then ``summary.json`` (atomically), and skips a seed whose summary is stored. Training return only: the final policy needs the wrapper's statistics to act,
so there is no separate evaluation here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import gymnasium as gym
import numpy as np

from benchmarks.benchutil import RESULTS
from keras_trpo_serving.files import atomic_write_text

DEFAULT_OUT = os.path.join(RESULTS, "ahead", "swimmer", "external_obs")


class SharedObservationStats:
    """Observation statistics shared by the envs of one process: normalise with them, and take in what was seen.

    ``per_step``: each observation joins the statistics before it is normalised (VecNormalize's order).
    Otherwise observations are normalised with frozen statistics and kept until ``commit()`` takes them all in.
    """

    def __init__(self, shape: tuple[int, ...], per_step: bool, clip: float = 10.0, epsilon: float = 1e-8):
        from keras_trpo.running_stats import RunningMeanStd
        self.rms = RunningMeanStd(shape)
        self.per_step, self.clip, self.epsilon = per_step, clip, epsilon
        self.pending: list[np.ndarray] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.per_step:
            self.rms.update(obs[None])
        else:
            self.pending.append(np.array(obs, np.float64))
        z = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def commit(self) -> None:
        if self.pending:
            self.rms.update(np.stack(self.pending))
            self.pending = []


def make_shared_env(env_id: str, stats: SharedObservationStats):
    """A factory: ``env_id`` with its observations normalised by ``stats`` (shared by every env it makes)."""
    def factory() -> gym.Env:
        env = gym.make(env_id)
        space = gym.spaces.Box(-stats.clip, stats.clip, env.observation_space.shape, np.float32)
        return gym.wrappers.TransformObservation(env, stats, space)
    return factory


def make_env(env_id: str, clip: float = 10.0):
    """A factory: ``env_id`` with per-step running observation statistics, clipped as VecNormalize clips."""
    def factory() -> gym.Env:
        env = gym.wrappers.NormalizeObservation(gym.make(env_id))
        space = gym.spaces.Box(-clip, clip, env.observation_space.shape, np.float32)
        return gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -clip, clip).astype(np.float32), space)
    return factory


def run(env_id: str, steps: int, seed: int, out: str, reward_scaling: str, shared_stats: str | None = None) -> dict:
    import keras

    from keras_trpo import TRPO
    from keras_trpo.callbacks import MetricsCSVLogger
    from keras_trpo.config import default_config

    folder = os.path.join(out, f"seed_{seed}")
    summary_path = os.path.join(folder, "summary.json")
    if os.path.exists(summary_path):
        print(f"stored: {summary_path}")
        with open(summary_path) as f:
            return json.load(f)
    probe = gym.make(env_id)
    callbacks = []
    if shared_stats is None:
        factory = make_env(env_id)
        observations = "gymnasium NormalizeObservation per env, clipped to +-10, normalize_obs=False"
    else:
        stats = SharedObservationStats(probe.observation_space.shape, per_step=shared_stats == "step")
        factory = make_shared_env(env_id, stats)
        # after the update, as keras_trpo's normaliser takes in a rollout (sync envs: the same process)
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: stats.commit()))
        observations = f"statistics shared by the envs, moved per {shared_stats}, clipped to +-10, normalize_obs=False"
    config = default_config(env_id, probe.action_space, presets="zoo").replace(
        normalize_obs=False, reward_scaling=reward_scaling, vectorization="sync")
    probe.close()
    agent = TRPO(factory, seed=seed, config=config)
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    # the command line's metrics.csv writer; summary.json, written last, marks the seed as done
    history = agent.fit(steps, verbose=0,
                        callbacks=[*callbacks, MetricsCSVLogger(os.path.join(folder, "metrics.csv"))])
    wall = time.perf_counter() - start
    returns = history.history["mean_return"]
    marks = {f"{m // 1000}k": float(returns[min(len(returns), int(np.ceil(m / (config.n_envs * config.n_steps)))) - 1])
             for m in (100_000, 200_000, 300_000, 500_000, 1_000_000) if m <= steps}
    summary = dict(env=env_id, seed=seed, timesteps=int(agent.num_timesteps), wall_s=wall, reward_scaling=reward_scaling,
                   observations=observations,
                   mean_return_at=marks, last_mean_return=float(returns[-1]))
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    print(f"{env_id} seed {seed}: training return {marks} (last {returns[-1]:.1f}), {wall:.0f} s -> {folder}", flush=True)
    agent.close()
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env")
    p.add_argument("steps", type=float)
    p.add_argument("seeds", type=int, nargs="+")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--reward-scaling", choices=["step", "rollout"], default="step")
    p.add_argument("--shared-stats", choices=["step", "rollout"], default=None,
                   help="one set of observation statistics for all envs, moved per step or per rollout")
    a = p.parse_args(argv)
    for seed in a.seeds:
        run(a.env, int(a.steps), seed, a.out, a.reward_scaling, a.shared_stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())

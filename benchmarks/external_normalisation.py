"""keras_trpo with sb3-contrib's data pipeline: observations normalised step by step outside the model.

  python -m benchmarks.external_normalisation ENV STEPS SEED [--out DIR] [--reward-scaling step|rollout]

The other half of the Swimmer-v5 screen (issue 28, ``results/ahead/swimmer/README.md``). keras_trpo's own
normaliser sits in the model and its statistics move once per rollout, after the update, so that pi_old is
the policy that acted; VecNormalize (sb3-contrib's) moves them at every step and stores the observations as
normalised then. Here each env is wrapped in gymnasium's ``NormalizeObservation`` (per-step running statistics,
as VecNormalize; one per env where VecNormalize shares them across envs) and clipped to +-10, and the agent
gets ``normalize_obs=False``: it learns from the observations as they were normalised when it acted, exactly
sb3-contrib's way. Rewards: ``reward_scaling="step"`` (VecNormalize's per-step return statistics) by default.
Everything else is the zoo's settings for ENV.

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


def make_env(env_id: str, clip: float = 10.0):
    """A factory: ``env_id`` with per-step running observation statistics, clipped as VecNormalize clips."""
    def factory() -> gym.Env:
        env = gym.wrappers.NormalizeObservation(gym.make(env_id))
        space = gym.spaces.Box(-clip, clip, env.observation_space.shape, np.float32)
        return gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -clip, clip).astype(np.float32), space)
    return factory


def run(env_id: str, steps: int, seed: int, out: str, reward_scaling: str) -> dict:
    from keras_trpo import TRPO
    from keras_trpo.callbacks import MetricsCSVLogger
    from keras_trpo.config import default_config

    folder = os.path.join(out, f"seed_{seed}")
    summary_path = os.path.join(folder, "summary.json")
    if os.path.exists(summary_path):
        print(f"stored: {summary_path}")
        with open(summary_path) as f:
            return json.load(f)
    factory = make_env(env_id)
    probe = factory()
    config = default_config(env_id, probe.action_space, presets="zoo").replace(
        normalize_obs=False, reward_scaling=reward_scaling)
    probe.close()
    agent = TRPO(factory, seed=seed, config=config)
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    # the command line's metrics.csv writer; summary.json, written last, marks the seed as done
    history = agent.fit(steps, verbose=0, callbacks=[MetricsCSVLogger(os.path.join(folder, "metrics.csv"))])
    wall = time.perf_counter() - start
    returns = history.history["mean_return"]
    marks = {f"{m // 1000}k": float(returns[min(len(returns), int(np.ceil(m / (config.n_envs * config.n_steps)))) - 1])
             for m in (100_000, 200_000, 300_000) if m <= steps}
    summary = dict(env=env_id, seed=seed, timesteps=int(agent.num_timesteps), wall_s=wall, reward_scaling=reward_scaling,
                   observations="gymnasium NormalizeObservation per env, clipped to +-10, normalize_obs=False",
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
    a = p.parse_args(argv)
    for seed in a.seeds:
        run(a.env, int(a.steps), seed, a.out, a.reward_scaling)
    return 0


if __name__ == "__main__":
    sys.exit(main())

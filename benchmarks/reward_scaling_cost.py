"""What reward normalisation costs per rollout: ``RewardScaler`` in both modes on the rollout shapes of the set.

``normalize_reward=True`` runs a ``RewardScaler`` over every rollout (discounted returns, their running
statistics, then the scale): ``reward_scaling="rollout"`` (the default) takes the rollout's statistics in at
once, ``"step"`` as SB3's VecNormalize does at every env step. This times one call on random rewards of each
shape (median of ``--repeats`` after a warm-up) and prints milliseconds per rollout and microseconds per env
step. Speed only; ``tests/test_running_stats.py`` checks the numbers.

    PYTHONPATH=. python -m benchmarks.reward_scaling_cost [--repeats 50]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from keras_trpo.running_stats import RewardScaler

# (name, n_steps, n_envs): the zoo's MuJoCo rollout, CartPoleNoVel's, and a wide one
SHAPES = (("MuJoCo (zoo: 1024 x 2)", 1024, 2), ("CartPoleNoVel (32 x 8)", 32, 8), ("2048 x 16", 2048, 16))


def time_call(scaler: RewardScaler, rewards: np.ndarray, ends: np.ndarray, repeats: int) -> float:
    """Median seconds of one ``scaler(rewards, ends)`` call."""
    scaler(rewards, ends)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scaler(rewards, ends)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=50)
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| rollout (n_steps x n_envs) | mode | ms per rollout | µs per env step |")
    print("|---|---|--:|--:|")
    for name, steps, envs in SHAPES:
        rewards = rng.normal(0.5, 1.0, size=(steps, envs)).astype(np.float32)
        ends = rng.random((steps, envs)) < 1e-3
        for mode in ("rollout", "step"):
            seconds = time_call(RewardScaler(envs, 0.99, per_step=mode == "step"), rewards, ends, a.repeats)
            print(f"| {name} | {mode} | {seconds * 1e3:.2f} | {seconds * 1e6 / (steps * envs):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Partially observable classic-control tasks: CartPole and Pendulum with their velocities hidden.

Registered under rl-baselines3-zoo's ids, with the zoo's wrapper semantics (``rl_zoo3/wrappers.py``
``MaskVelocityWrapper`` and ``rl_zoo3/import_envs.py``): the velocity entries of the observation
are set to 0, the others are passed through and the observation space is unchanged, so a policy
sees only positions and must infer velocities from their history (a recurrent policy can, a
feed-forward one cannot).

- ``CartPoleNoVel-v1``: CartPole-v1 with cart velocity (index 1) and pole angular velocity
  (index 3) zeroed; position (0) and angle (2) kept.
- ``PendulumNoVel-v1``: Pendulum-v1 with the angular velocity (index 2) zeroed; cos and sin of
  the angle (0, 1) kept.

The ids are registered with gymnasium when ``keras_trpo.envs`` (and so ``keras_trpo.TRPO``, the
command line and every rollout worker) is imported; ``import keras_trpo.pomdp`` does it alone,
without TensorFlow. The inner env keeps its own time limit (500 and 200 steps).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# id -> (the env it masks, the observation indices zeroed): the zoo's velocity_indices.
VELOCITY_INDICES: dict[str, tuple[str, tuple[int, ...]]] = {
    "CartPoleNoVel-v1": ("CartPole-v1", (1, 3)),
    "PendulumNoVel-v1": ("Pendulum-v1", (2,)),
}


class MaskVelocityWrapper(gym.ObservationWrapper):
    """Zero the observation entries ``indices`` (float32 observations; the space is unchanged)."""

    def __init__(self, env: gym.Env, indices: tuple[int, ...]):
        super().__init__(env)
        mask = np.ones(env.observation_space.shape, env.observation_space.dtype)
        mask[list(indices)] = 0
        self.mask = mask

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation * self.mask


def make_masked(masked_id: str, **kwargs: Any) -> gym.Env:
    """The entry point of the ids above: the inner env (``kwargs`` passed on, e.g. ``render_mode``), masked."""
    inner, indices = VELOCITY_INDICES[masked_id]
    return MaskVelocityWrapper(gym.make(inner, **kwargs), indices)


def _entry(masked_id: str):
    return lambda **kwargs: make_masked(masked_id, **kwargs)


def register_envs() -> None:
    """Register the ids with gymnasium (once; again is a no-op)."""
    for env_id in VELOCITY_INDICES:
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_entry(env_id))


register_envs()

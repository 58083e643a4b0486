"""Invalid actions, counted the same way for every arm of the action-mask benchmark (issue 29).

An *invalid action* is an action the env's mask forbade at that step: for MultiDiscrete and MultiBinary
an action with at least one forbidden sub-action or bit (so a JointLimits-v0 step counts once however
many of its three commands the env refuses), as keras_trpo counts it in training (the ``invalid_actions``
metric, ``keras_trpo.rollouts.masks.count_invalid``). The mask is the one the env gave with the
observation the action answers (``keras_trpo_serving.action_masks``: the ``action_masks()`` method wins
over ``info["action_mask"]``), whether or not the learner saw it.

- ``forbidden(space, action, mask)``: whether the mask forbids one step's action (pure).
- ``CountInvalid``: a gymnasium wrapper counting over training, and keeping ``last_mask`` (the mask
  of the current state from the last ``reset``/``step``) for an ``ActionMasker`` to read.
- ``masked_episodes``: the final evaluation's deterministic episodes (``benchutil.episode_returns``'s
  protocol: fresh env, episode i reset with ``seed + i``), the mask handed to the policy, and the count.

NumPy and gymnasium only (no TensorFlow, no torch): the sb3-contrib side imports it too.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np

from keras_trpo_serving.action_masks import MaskSource
from keras_trpo_serving.invalid_actions import forbidden as forbidden_rows


def forbidden(space: gym.Space, action: Any, mask: Optional[np.ndarray]) -> bool:
    """Whether ``mask`` forbids ``action``: any of its sub-actions or bits (False when ``mask`` is None).

    ``mask``: sb3-contrib's layout, nonzero = valid; the rule is the sampling rule's
    (``keras_trpo_serving.invalid_actions.forbidden``, NumPy only). Raises ValueError for another space
    or a mask of the wrong size.
    """
    if mask is None:
        return False
    rows = np.asarray(mask).reshape(1, -1) != 0
    return bool(forbidden_rows(space, np.asarray(action)[None], rows)[0])


class CountInvalid(gym.Wrapper):
    """Counts the invalid actions taken through it (``invalid``, ``steps``) and keeps ``last_mask``,
    the env's mask for the current state (None if it gives none)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._source = MaskSource(env)
        self.last_mask: Optional[np.ndarray] = None
        self.invalid = self.steps = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.last_mask = self._source(info)
        return obs, info

    def step(self, action):
        self.invalid += forbidden(self.action_space, action, self.last_mask)
        self.steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last_mask = self._source(info)
        return obs, reward, terminated, truncated, info


def masked_episodes(env_id: str, act: Callable[[Any, Optional[np.ndarray]], Any], episodes: int, seed: int,
                    on_reset: Optional[Callable[[], None]] = None) -> tuple[list[float], int]:
    """(undiscounted returns, invalid actions) of ``episodes`` deterministic episodes on a fresh
    ``gym.make(env_id)``, episode i reset with ``seed + i``. ``act(observation, mask)`` gets the env's
    current mask (bool, or None if the env gives none) and may ignore it (an unmasked learner); the
    count is against the env's mask either way. ``on_reset()`` runs after each reset."""
    env = CountInvalid(gym.make(env_id))
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            if on_reset is not None:
                on_reset()
            total, done = 0.0, False
            while not done:
                mask = None if env.last_mask is None else np.asarray(env.last_mask) != 0
                action = act(obs, mask)
                if discrete:  # a policy's [1] or 0-d array -> the int Taxi's transition table is indexed by
                    action = int(np.asarray(action).reshape(-1)[0])
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns, env.invalid

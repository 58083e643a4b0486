"""Generalised advantage estimation, GAE(lambda)."""
from __future__ import annotations

import numpy as np


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    episode_end: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and lambda-returns for a rollout of ``T`` steps in ``E`` envs.

    Args:
      rewards: ``[T, E]`` reward of step t.
      values: ``[T, E]`` ``V(s_t)``.
      next_values: ``[T, E]`` ``V(s_{t+1})`` where ``s_{t+1}`` is the real
        next state: the final observation of an episode that ended at t (used
        only when it was truncated), else the next rollout observation.
      terminated: ``[T, E]`` bool, the MDP ended at t: no bootstrap.
      episode_end: ``[T, E]`` bool, terminated or truncated at t: the
        advantage does not flow back across it.
      gamma: discount; lam: GAE lambda.

    Returns:
      ``(advantages [T, E], returns [T, E])`` with ``returns = advantages + values``.
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    bootstrap = gamma * (1.0 - np.asarray(terminated, np.float64)) * np.asarray(next_values, np.float64)
    deltas = rewards + bootstrap - values
    carry_factor = gamma * lam * (1.0 - np.asarray(episode_end, np.float64))
    advantages = np.zeros_like(deltas)
    last = np.zeros(deltas.shape[1:])
    for t in range(deltas.shape[0] - 1, -1, -1):
        last = deltas[t] + carry_factor[t] * last
        advantages[t] = last
    return advantages.astype(np.float32), (advantages + values).astype(np.float32)

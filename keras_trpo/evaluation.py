"""Evaluating a policy on whole episodes of a fresh environment (SB3's ``evaluate_policy``)."""
from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np

from keras_trpo.envs import EnvSpec
from keras_trpo.policies.policy import ActorCriticPolicy
from keras_trpo.spaces import check_observations


def evaluate_policy(policy: ActorCriticPolicy, episodes: int, seed: int, deterministic: bool,
                    env: Optional[EnvSpec], *, trained_on: Optional[EnvSpec], env_id: Optional[str],
                    env_kwargs: dict[str, Any]) -> list[float]:
    """``episode_returns`` on ``evaluation_env(env, trained_on, env_id, env_kwargs)``, closed after if made here."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    eval_env, owned = evaluation_env(env, trained_on, env_id, env_kwargs)
    try:
        return episode_returns(policy, eval_env, episodes, seed, deterministic)
    finally:
        if owned:
            eval_env.close()


def evaluation_env(env: Optional[EnvSpec], trained_on: Optional[EnvSpec], env_id: Optional[str],
                   env_kwargs: dict[str, Any]) -> tuple[gym.Env, bool]:
    """A fresh env to evaluate on, and whether we own (and so close) it.

    Without ``env``: the training env id or factory (``trained_on``); a training Env instance
    is never reused, since evaluation would disturb its episode: its id is made instead.
    """
    spec = env
    if spec is None:
        spec = env_id if isinstance(trained_on, (gym.Env, gym.vector.VectorEnv)) else trained_on
    if spec is None:
        raise ValueError("evaluate needs an env: pass env= (an id, an Env or a factory)")
    if isinstance(spec, gym.vector.VectorEnv):
        raise ValueError("evaluate takes an env id, an Env or a factory, not a VectorEnv")
    if isinstance(spec, str):
        return gym.make(spec, **env_kwargs), True
    if isinstance(spec, gym.Env):
        return spec, False
    return spec(), True


def episode_returns(policy: ActorCriticPolicy, env: gym.Env, episodes: int, seed: int,
                    deterministic: bool) -> list[float]:
    """The return of each of ``episodes`` episodes, episode ``i`` reset with ``seed + i``.

    Actions are drawn from one generator seeded ``seed``; a recurrent policy starts each episode
    from the zero state. Nothing of the policy changes (its observation statistics stay frozen).
    """
    rng = np.random.default_rng(seed)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        state, start = policy.initial_state(1), np.ones(1, bool)
        while not done:
            batch, _ = check_observations(obs, policy.observation_space, "observation from the env")
            stored, state = policy.act(batch, state, start, rng, deterministic)
            start = np.zeros(1, bool)
            obs, reward, terminated, truncated, _ = env.step(policy.family.to_env(stored)[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns

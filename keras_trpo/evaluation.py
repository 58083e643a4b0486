"""Evaluating a policy on whole episodes of a fresh environment (SB3's ``evaluate_policy``)."""
from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np

from keras_trpo.envs import EnvSpec
from keras_trpo.policies.policy import ActorCriticPolicy
from keras_trpo.rollouts.masks import check_env_masks, count_invalid
from keras_trpo.spaces import check_observations
from keras_trpo_serving.action_masks import MaskSource
from keras_trpo_serving.errors import InvalidActionMask


def evaluate_policy(policy: ActorCriticPolicy, episodes: int, seed: int, deterministic: bool,
                    env: Optional[EnvSpec], *, trained_on: Optional[EnvSpec], env_id: Optional[str],
                    env_kwargs: dict[str, Any], masked: bool = False) -> tuple[list[float], Optional[int]]:
    """``episode_returns`` on ``evaluation_env(env, trained_on, env_id, env_kwargs)``, closed after if made here."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    eval_env, owned = evaluation_env(env, trained_on, env_id, env_kwargs)
    try:
        return episode_returns(policy, eval_env, episodes, seed, deterministic, masked)
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
                    deterministic: bool, masked: bool = False) -> tuple[list[float], Optional[int]]:
    """The return of each of ``episodes`` episodes, episode ``i`` reset with ``seed + i``, and the
    number of actions the env's mask forbade (None if the env gives no masks).

    Actions are drawn from one generator seeded ``seed``; a recurrent policy starts each episode
    from the zero state; a ``masked`` policy acts under the env's masks (``MaskSource``), which it
    must then give. Nothing of the policy changes (its observation statistics stay frozen).
    """
    rng, rule, source = np.random.default_rng(seed), policy.family.rule, MaskSource(env)
    returns, invalid, gives_masks = [], 0, None
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        done, total, steps = False, 0.0, 0
        state, start = policy.initial_state(1), np.ones(1, bool)
        while not done:
            batch, _ = check_observations(obs, policy.observation_space, "observation from the env")
            when = f"in evaluation episode {i} " + (f"after step {steps}" if steps else "after reset")
            mask = check_env_masks(rule, [source(info)], 0, when)
            if gives_masks is None:
                gives_masks = mask is not None
                if masked and not gives_masks:
                    raise InvalidActionMask("this agent acts under action masks (agent.masked), but the evaluation "
                                            "env gives none: it needs an action_masks() method or info['action_mask']")
            elif gives_masks != (mask is not None):
                raise InvalidActionMask(f"the env gave no action mask {when}, though it gave one before")
            stored, state = policy.act(batch, state, start, rng, deterministic, mask if masked else None)
            invalid += int(count_invalid(rule, stored, mask).sum())
            start = np.zeros(1, bool)
            obs, reward, terminated, truncated, info = env.step(policy.family.to_env(stored)[0])
            steps += 1
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns, (invalid if gives_masks else None)

"""The one rollout path: step a vector env with the actor and record a batch."""
from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from keras_trpo.actor import Actor
from keras_trpo.running_stats import RewardScaler
from keras_trpo.spaces import InvalidObservationError, obs_shape


@dataclass
class Rollout:
    """``T`` steps of ``E`` envs. Observations are raw (the model normalises)."""

    obs: np.ndarray  # [T, E, *obs_shape] float32
    actions: np.ndarray  # [T, E, *action] stored form
    rewards: np.ndarray  # [T, E] float32 (scaled if reward scaling is on)
    raw_rewards: np.ndarray  # [T, E] float32 as the env returned them
    terminated: np.ndarray  # [T, E] bool
    episode_end: np.ndarray  # [T, E] bool: terminated or truncated
    truncated_index: np.ndarray  # [k, 2] (t, e) of truncated, not terminated, steps
    truncated_obs: np.ndarray  # [k, *obs_shape] their final observations
    last_obs: np.ndarray  # [E, *obs_shape] observation after the last step
    episode_returns: list = field(default_factory=list)  # unscaled returns of episodes finished in this rollout
    episode_lengths: list = field(default_factory=list)

    @property
    def n_steps(self) -> int:
        return int(self.rewards.size)


class RolloutCollector:
    """Keeps the vector env's current observation across calls to ``collect``."""

    def __init__(self, venv: gym.vector.VectorEnv, actor: Actor, obs_space: gym.Space, rng: np.random.Generator, seed: int,
                 reward_scaler: RewardScaler | None = None):
        self.venv, self.actor, self.rng = venv, actor, rng
        self.obs_shape = obs_shape(obs_space)
        self.n_envs = venv.num_envs
        self.reward_scaler = reward_scaler
        obs, _ = venv.reset(seed=seed)
        self.obs = self._check(obs)
        self._ep_return = np.zeros(self.n_envs)
        self._ep_length = np.zeros(self.n_envs, np.int64)

    def _check(self, obs) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape((self.n_envs,) + self.obs_shape)
        if not np.isfinite(obs).all():
            raise InvalidObservationError(
                "the environment returned an observation with NaN or inf; check the env (keras_trpo cannot learn from it)"
            )
        return obs

    def collect(self, n_steps: int) -> Rollout:
        """Steps every env ``n_steps`` times with freshly sampled actions."""
        family, venv, E = self.actor.family, self.venv, self.n_envs
        obs_buf = np.empty((n_steps, E) + self.obs_shape, np.float32)
        rew_buf = np.empty((n_steps, E), np.float32)
        term_buf = np.empty((n_steps, E), bool)
        end_buf = np.empty((n_steps, E), bool)
        actions = []
        trunc_idx, trunc_obs = [], []
        ep_returns, ep_lengths = [], []
        obs = self.obs
        for t in range(n_steps):
            action = self.actor.act(obs, self.rng)
            next_obs, reward, terminated, truncated, info = venv.step(family.to_env(action))
            obs_buf[t] = obs
            actions.append(action)
            ended = np.logical_or(terminated, truncated)
            self._ep_return += reward
            self._ep_length += 1
            if ended.any():
                for e in np.flatnonzero(ended):
                    ep_returns.append(float(self._ep_return[e]))
                    ep_lengths.append(int(self._ep_length[e]))
                    if truncated[e] and not terminated[e]:
                        trunc_idx.append((t, e))
                        trunc_obs.append(info["final_obs"][e])
                self._ep_return[ended] = 0.0
                self._ep_length[ended] = 0
            rew_buf[t] = reward
            term_buf[t] = terminated
            end_buf[t] = ended
            obs = self._check(next_obs)
        self.obs = obs
        raw_buf = rew_buf
        if self.reward_scaler is not None:
            rew_buf = self.reward_scaler(rew_buf, end_buf)
        trunc_obs_arr = (
            self._check_final(np.stack(trunc_obs)) if trunc_obs else np.empty((0,) + self.obs_shape, np.float32)
        )
        return Rollout(
            obs=obs_buf,
            actions=np.stack(actions),
            rewards=rew_buf,
            raw_rewards=raw_buf,
            terminated=term_buf,
            episode_end=end_buf,
            truncated_index=np.asarray(trunc_idx, np.int64).reshape(-1, 2),
            truncated_obs=trunc_obs_arr,
            last_obs=obs.copy(),
            episode_returns=ep_returns,
            episode_lengths=ep_lengths,
        )

    def _check_final(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32).reshape((-1,) + self.obs_shape)
        if not np.isfinite(obs).all():
            raise InvalidObservationError("the environment returned a final observation with NaN or inf")
        return obs

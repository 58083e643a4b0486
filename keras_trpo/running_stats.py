"""Running statistics for observation normalisation and reward scaling (NumPy)."""
from __future__ import annotations

import numpy as np


class RunningMeanStd:
    """Mean and variance of a stream of ``[B, *shape]`` batches (parallel Welford)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_state(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], np.float64).reshape(self.mean.shape)
        self.var = np.asarray(state["var"], np.float64).reshape(self.var.shape)
        self.count = float(state["count"])


class RewardScaler:
    """Divides rewards by the running std of the discounted return (as SB3's VecNormalize).

    By default it works on a whole rollout at once: the statistics take in every
    step's discounted return, then the rollout is scaled by the updated std, so all
    rewards of one batch share one scale (and no NumPy call happens per env step).
    With ``per_step=True`` it does what VecNormalize does at every env step: take in
    that step's ``[E]`` discounted returns, then scale that step's rewards by the std
    so far (one statistics update per step: slower, and early rewards of a run get
    noisier scales).
    """

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8, per_step: bool = False):
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(n_envs, np.float64)
        self.gamma, self.clip, self.epsilon, self.per_step = gamma, clip, epsilon, per_step

    def __call__(self, rewards: np.ndarray, episode_end: np.ndarray) -> np.ndarray:
        """``rewards``, ``episode_end``: ``[T, E]`` -> scaled rewards ``[T, E]`` float32."""
        rewards = np.asarray(rewards, np.float64)
        discounted = np.empty_like(rewards)
        scale = np.empty_like(rewards)
        ret = self.returns
        for t in range(rewards.shape[0]):
            ret = ret * self.gamma + rewards[t]
            discounted[t] = ret
            if self.per_step:
                self.stats.update(ret)
                scale[t] = np.sqrt(self.stats.var + self.epsilon)
            ret = np.where(episode_end[t], 0.0, ret)
        self.returns = ret
        if not self.per_step:
            self.stats.update(discounted.reshape(-1))
            scale[:] = np.sqrt(self.stats.var + self.epsilon)
        return np.clip(rewards / scale, -self.clip, self.clip).astype(np.float32)

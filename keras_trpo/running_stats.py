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


def discounted_returns(rewards: np.ndarray, episode_end: np.ndarray, gamma: float,
                       carry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The running discounted return at every step, restarted after each episode end.

    Args:
      rewards: ``[T, E]``; episode_end: ``[T, E]`` bool; carry: ``[E]``, each env's return before step 0.

    Returns:
      ``(returns [T, E] float64, carry [E])`` with ``returns[t] = gamma * returns[t-1] + rewards[t]``
      (``carry`` before step 0, 0 after an episode end), and the carry for the next rollout.
    """
    rewards = np.asarray(rewards, np.float64)
    out = np.empty_like(rewards)
    carry_out = np.empty(rewards.shape[1], np.float64)
    # Python floats along each env: the same IEEE double operations as a NumPy step over [E], without a NumPy
    # call per step (that took 4-8 ms per 2,048-step rollout: benchmarks/reward_scaling_cost.py)
    for e in range(rewards.shape[1]):
        ret, column, ends = float(carry[e]), rewards[:, e].tolist(), np.asarray(episode_end)[:, e].tolist()
        values = []
        for r, end in zip(column, ends):
            ret = ret * gamma + r
            values.append(ret)
            if end:
                ret = 0.0
        out[:, e], carry_out[e] = values, ret
    return out, carry_out


def running_moments(batches: np.ndarray, mean: float, var: float, count: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance and count of everything seen after each row of ``batches`` is taken in, as
    ``RunningMeanStd.update`` called row by row would give them (up to rounding), in one pass.

    Args:
      batches: ``[T, B]``, taken in a row at a time after a prior of ``count`` samples with ``mean``, ``var``.

    Returns:
      ``(means [T], variances [T], counts [T])``: the statistics after rows ``0..t``.
    """
    y = np.asarray(batches, np.float64) - mean  # about the prior's mean: the sums stay small, cancellation mild
    counts = count + batches.shape[1] * np.arange(1, batches.shape[0] + 1, dtype=np.float64)
    shift = np.cumsum(y.sum(axis=1)) / counts
    variances = np.maximum((count * var + np.cumsum((y * y).sum(axis=1))) / counts - shift * shift, 0.0)
    return mean + shift, variances, counts


class RewardScaler:
    """Divides rewards by the running std of the discounted return (as SB3's VecNormalize).

    By default it works on a whole rollout at once: the statistics take in every
    step's discounted return, then the rollout is scaled by the updated std, so all
    rewards of one batch share one scale (and no NumPy call happens per env step).
    With ``per_step=True`` it does what VecNormalize does at every env step: take in
    that step's ``[E]`` discounted returns, then scale that step's rewards by the std
    so far (early rewards of a run get noisier scales). The statistics after every step
    come from one pass of cumulative sums (``running_moments``), not one update per step.
    """

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8, per_step: bool = False):
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(n_envs, np.float64)
        self.gamma, self.clip, self.epsilon, self.per_step = gamma, clip, epsilon, per_step

    def __call__(self, rewards: np.ndarray, episode_end: np.ndarray) -> np.ndarray:
        """``rewards``, ``episode_end``: ``[T, E]`` -> scaled rewards ``[T, E]`` float32."""
        rewards = np.asarray(rewards, np.float64)
        discounted, self.returns = discounted_returns(rewards, episode_end, self.gamma, self.returns)
        if self.per_step:
            stats = self.stats
            means, variances, counts = running_moments(discounted, float(stats.mean), float(stats.var), stats.count)
            stats.mean, stats.var, stats.count = np.asarray(means[-1]), np.asarray(variances[-1]), float(counts[-1])
            scale = np.sqrt(variances + self.epsilon)[:, None]
        else:
            self.stats.update(discounted.reshape(-1))
            scale = np.sqrt(self.stats.var + self.epsilon)
        return np.clip(rewards / scale, -self.clip, self.clip).astype(np.float32)

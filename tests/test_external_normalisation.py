"""benchmarks/external_normalisation.py's shared statistics against direct computations over the same stream."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from benchmarks.external_normalisation import SharedObservationStats, make_shared_env


def _stream(seed: int = 0, n: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).normal([3.0, -1.0], [2.0, 0.5], size=(n, 2)).astype(np.float32)


def test_per_step_statistics_take_each_observation_in_before_normalising_it():
    obs = _stream()
    stats = SharedObservationStats((2,), per_step=True)
    out = np.stack([stats(o) for o in obs])
    for t in (0, 7, 39):  # VecNormalize's order: the prior (count 1e-4, mean 0, var 1) and rows 0..t, then row t
        seen = obs[: t + 1].astype(np.float64)
        prior = 1e-4
        mean = seen.sum(0) / (prior + t + 1)
        var = (prior * 1.0 + ((seen - seen.mean(0)) ** 2).sum(0) + (seen.mean(0) ** 2) * prior * (t + 1) / (prior + t + 1)) \
            / (prior + t + 1)
        np.testing.assert_allclose(out[t], np.clip((obs[t] - mean) / np.sqrt(var + 1e-8), -10, 10), rtol=1e-5, atol=1e-5)


def test_per_rollout_statistics_stay_frozen_until_commit_then_take_the_whole_rollout():
    obs = _stream(1)
    stats = SharedObservationStats((2,), per_step=False)
    first = np.stack([stats(o) for o in obs[:20]])
    np.testing.assert_allclose(first, np.clip(obs[:20], -10, 10))  # mean 0, variance 1 until the first commit
    stats.commit()
    second = np.stack([stats(o) for o in obs[20:]])
    seen = obs[:20].astype(np.float64)
    mean, std = seen.mean(0), np.sqrt(seen.var(0) + 1e-8)
    np.testing.assert_allclose(second, (obs[20:] - mean) / std, rtol=1e-3, atol=1e-3)  # the 1e-4 prior's weight
    assert stats.pending and len(stats.pending) == 20


def test_envs_made_by_one_factory_share_the_statistics_and_clip():
    stats = SharedObservationStats((4,), per_step=True, clip=0.5)
    factory = make_shared_env("CartPole-v1", stats)
    a, b = factory(), factory()
    a.reset(seed=0)
    b.reset(seed=1)
    assert stats.rms.count > 2 - 1e-3  # both envs' first observations went into the one set of statistics
    for env in (a, b):
        o, *_ = env.step(env.action_space.sample())
        assert o.dtype == np.float32 and np.all(np.abs(o) <= 0.5) and env.observation_space.contains(o)
        env.close()
    assert isinstance(a.observation_space, gym.spaces.Box) and a.observation_space.high[0] == np.float32(0.5)

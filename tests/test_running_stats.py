"""RunningMeanStd and RewardScaler against direct NumPy computations over everything seen so far."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_trpo.running_stats import RewardScaler, RunningMeanStd


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6), seed=st.integers(0, 1000))
def test_running_mean_std_equals_the_moments_of_all_batches(sizes, seed):
    rng = np.random.default_rng(seed)
    batches = [rng.normal(3.0, 2.0, size=(n, 2)) for n in sizes]
    rms = RunningMeanStd((2,), epsilon=1e-12)  # a negligible prior, so the closed form applies
    for b in batches:
        rms.update(b)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, everything.mean(0), rtol=1e-9)
    np.testing.assert_allclose(rms.var, everything.var(0), rtol=1e-7, atol=1e-9)


def discounted_returns(rewards, episode_end, gamma):
    """``[T, E]`` -> the running discounted return at every step, restarted after an episode end."""
    out, ret = np.empty_like(rewards), np.zeros(rewards.shape[1])
    for t in range(len(rewards)):
        ret = gamma * ret + rewards[t]
        out[t] = ret
        ret[episode_end[t]] = 0.0
    return out


def vecnormalize_reference(rewards, episode_end, gamma, clip=10.0, eps=1e-8):
    """What SB3's VecNormalize does per env step, written from its description: return stats then scale."""
    disc = discounted_returns(rewards, episode_end, gamma)
    return np.stack([np.clip(rewards[t] / np.sqrt(disc[: t + 1].var() + eps), -clip, clip) for t in range(len(rewards))])


@pytest.fixture
def rollout():
    rng = np.random.default_rng(0)
    rewards = rng.normal(1.0, 2.0, size=(50, 4))
    episode_end = rng.random((50, 4)) < 0.1
    return rewards, episode_end


def test_rollout_scaling_uses_one_std_for_the_whole_rollout(rollout):
    rewards, episode_end = rollout
    scaled = RewardScaler(4, 0.99)(rewards, episode_end)
    std = np.sqrt(discounted_returns(rewards, episode_end, 0.99).var())
    np.testing.assert_allclose(scaled, np.clip(rewards / std, -10, 10), rtol=1e-4)


def test_per_step_scaling_matches_vecnormalize(rollout):
    rewards, episode_end = rollout
    scaled = RewardScaler(4, 0.99, per_step=True)(rewards, episode_end)
    np.testing.assert_allclose(scaled, vecnormalize_reference(rewards, episode_end, 0.99), rtol=1e-3)


@pytest.mark.parametrize("per_step", [False, True])
def test_returns_carry_over_between_rollouts(rollout, per_step):
    rewards, episode_end = rollout
    whole = RewardScaler(4, 0.99, per_step=per_step)
    whole(rewards, episode_end)
    halves = RewardScaler(4, 0.99, per_step=per_step)
    halves(rewards[:25], episode_end[:25])
    halves(rewards[25:], episode_end[25:])
    np.testing.assert_allclose(halves.returns, whole.returns)
    if per_step:  # step by step, the statistics do not depend on how the steps were split into rollouts
        np.testing.assert_allclose(halves.stats.var, whole.stats.var)
        np.testing.assert_allclose(halves.stats.mean, whole.stats.mean)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 60), width=st.integers(1, 9), prior=st.floats(1e-4, 1e4), seed=st.integers(0, 1000))
def test_running_moments_equal_row_by_row_updates(rows, width, prior, seed):
    """The per-step statistics of one pass of cumulative sums against RunningMeanStd.update on every row."""
    from keras_trpo.running_stats import running_moments

    rng = np.random.default_rng(seed)
    batches = rng.normal(rng.normal(0, 50), rng.uniform(0.01, 20), size=(rows, width))
    rms = RunningMeanStd(())
    rms.update(rng.normal(5.0, 3.0, size=7))
    rms.count = prior  # any prior weight
    means, variances, counts = running_moments(batches, float(rms.mean), float(rms.var), rms.count)
    for t in range(rows):
        rms.update(batches[t])
        np.testing.assert_allclose(means[t], rms.mean, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(variances[t], rms.var, rtol=1e-8, atol=1e-10)
        assert counts[t] == pytest.approx(rms.count, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(1, 80), envs=st.integers(1, 6), gamma=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_discounted_returns_are_the_step_by_step_recurrence_bit_for_bit(steps, envs, gamma, seed):
    """The default rollout scaling must not move a bit when the recurrence leaves NumPy (histories stay)."""
    from keras_trpo.running_stats import discounted_returns as fast

    rng = np.random.default_rng(seed)
    rewards = rng.normal(0, 3, size=(steps, envs)).astype(np.float32)
    episode_end = rng.random((steps, envs)) < 0.2
    carry = rng.normal(0, 10, size=envs)
    out, new_carry = fast(rewards, episode_end, gamma, carry)
    ret = carry.copy()
    for t in range(steps):  # the NumPy step it replaces
        ret = ret * gamma + rewards[t].astype(np.float64)
        assert np.array_equal(out[t], ret)
        ret = np.where(episode_end[t], 0.0, ret)
    assert np.array_equal(new_carry, ret)

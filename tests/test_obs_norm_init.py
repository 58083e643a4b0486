"""``obs_norm_init``: where the in-model observation statistics start, against closed forms."""
import numpy as np
import pytest

import keras_trpo
from keras_trpo.config import ConfigError
from keras_trpo.layers import ObservationNormalizer

N = 64


def _agent(init: str) -> keras_trpo.TRPO:
    return keras_trpo.TRPO("Pendulum-v1", seed=5, n_envs=1, n_steps=N, normalize_obs=True, obs_norm_init=init,
                           value_epochs=1, jit_compile=False)


def _record_first_update(agent):
    """The policy normaliser's (mean, var) and the batch, at each policy update."""
    seen = []
    layer = next(l for l in agent.policy_model.layers if isinstance(l, ObservationNormalizer))
    original = agent.learner.policy_update

    def policy_update(obs, actions, adv, masks=None):  # masks: a masked agent's (train_step passes None otherwise)
        seen.append((layer.mean.numpy().copy(), layer.var.numpy().copy(), obs.copy()))
        return original(obs, actions, adv, masks)

    agent.learner.policy_update = policy_update
    return seen


def _welford_from_prior(batch: np.ndarray, prior_count: float = 1e-4):
    """Mean and variance after one batch, from the prior (mean 0, var 1, count 1e-4), in closed form."""
    n, m, v = len(batch), batch.mean(0), batch.var(0)
    total = prior_count + n
    return m * n / total, (prior_count + v * n + m**2 * prior_count * n / total) / total


def test_first_rollout_sets_the_statistics_before_the_first_update():
    agent = _agent("first_rollout")
    seen = _record_first_update(agent)
    agent.fit(2 * N, verbose=0)
    agent.close()
    mean, var, batch = seen[0]
    expected_mean, expected_var = _welford_from_prior(batch.astype(np.float64))
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, expected_var, rtol=1e-5)
    assert np.abs(expected_mean).max() > 0.05  # not the identity it started from
    # Each batch is counted once: the first before its update, the second after its own (as before).
    assert agent.obs_rms.count == pytest.approx(1e-4 + 2 * N)
    all_obs = np.concatenate([seen[0][2], seen[1][2]]).astype(np.float64)
    np.testing.assert_allclose(agent.obs_rms.mean, _welford_from_prior(all_obs)[0], rtol=1e-6, atol=1e-9)
    # The second update still sees the statistics of the first batch only (they lag one rollout after the first).
    np.testing.assert_allclose(seen[1][0], expected_mean, rtol=1e-5, atol=1e-6)


def test_identity_makes_the_first_update_on_raw_observations():
    agent = _agent("identity")
    seen = _record_first_update(agent)
    agent.fit(N, verbose=0)
    agent.close()
    np.testing.assert_array_equal(seen[0][0], 0.0)
    np.testing.assert_array_equal(seen[0][1], 1.0)
    assert agent.obs_rms.count == pytest.approx(1e-4 + N)


def test_first_rollout_is_the_default():
    assert keras_trpo.TRPOConfig().obs_norm_init == "first_rollout"


def test_obs_norm_init_is_validated():
    with pytest.raises(ConfigError, match="obs_norm_init"):
        keras_trpo.TRPOConfig().replace(obs_norm_init="zeros")

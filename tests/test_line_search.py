"""backtracking_line_search alone, and the trust region through the real policy update."""
import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_trpo.config import TRPOConfig
from keras_trpo.distributions import family_for
from keras_trpo.learner import Learner
from keras_trpo.line_search import backtracking_line_search
from keras_trpo.networks import build_policy_model, build_value_model


def quadratic(step):
    s = step[0]
    return s - s * s, s * s  # surrogate peaks at 0.5; KL grows as s^2


def test_accepts_the_first_step_inside_the_region_that_improves():
    r = backtracking_line_search(quadratic, tf.constant([1.0], tf.float64), tf.constant(0.0, tf.float64), max_kl=0.3,
                                 max_backtracks=10, shrink=0.5)
    assert bool(r.accepted) and int(r.tries) == 2
    np.testing.assert_allclose(r.step.numpy(), [0.5])
    assert float(r.kl) == pytest.approx(0.25) and float(r.surrogate) == pytest.approx(0.25)


def test_rejects_when_the_surrogate_does_not_improve():
    # every candidate is inside the trust region, but the surrogate only gets worse
    r = backtracking_line_search(lambda s: (-s[0] ** 2, 0.0 * s[0]), tf.constant([1.0], tf.float64),
                                 tf.constant(0.0, tf.float64), max_kl=1.0, max_backtracks=4, shrink=0.5)
    assert not bool(r.accepted) and int(r.tries) == 4
    np.testing.assert_array_equal(r.step.numpy(), [0.0])
    assert float(r.kl) == 0.0


def test_rejects_when_every_step_leaves_the_trust_region():
    r = backtracking_line_search(quadratic, tf.constant([10.0], tf.float64), tf.constant(0.0, tf.float64), max_kl=1e-6,
                                 max_backtracks=3, shrink=0.8)
    assert not bool(r.accepted) and int(r.tries) == 3 and float(r.step[0]) == 0.0


def _learner(space, max_kl, steps, seed):
    obs_space = gym.spaces.Box(-1, 1, (3,))
    family = family_for(space)
    policy = build_policy_model(obs_space, family, hidden=(8,), seed=seed)
    value = build_value_model(obs_space, hidden=(8,), seed=seed)
    cfg = TRPOConfig(max_kl=max_kl, line_search_steps=steps, cg_iters=5, jit_compile=False)
    return Learner(policy, value, family, cfg, keras.optimizers.Adam()), policy, family


SPACES = [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(max_kl=st.floats(1e-4, 0.2), steps=st.integers(1, 10), seed=st.integers(0, 10_000), space=st.sampled_from(SPACES),
       adv_scale=st.floats(0.01, 100.0))
def test_accepted_step_never_exceeds_max_kl(max_kl, steps, seed, space, adv_scale):
    learner, policy, family = _learner(space, max_kl, steps, seed)
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, size=(64, 3)).astype(np.float32)
    before = [v.numpy().copy() for v in policy.trainable_variables]
    old = family.make({k: tf.constant(v.numpy()) for k, v in policy(obs).items()})
    actions = family.sample({k: v.numpy() for k, v in policy(obs).items()}, rng)
    logs = learner.policy_update(obs, actions, (rng.normal(size=64) * adv_scale).astype(np.float32))
    kl = float(tf.reduce_mean(old.kl_divergence(family.make(policy(obs)))))  # recomputed independently
    assert kl <= max_kl * (1 + 1e-4) + 1e-7
    assert logs["kl"] <= max_kl * (1 + 1e-4) + 1e-7
    if logs["step_accepted"]:
        assert logs["surrogate_improvement"] > 0
    else:
        for b, v in zip(before, policy.trainable_variables):
            np.testing.assert_array_equal(b, v.numpy())  # restored exactly


def test_zero_advantages_leave_the_policy_unchanged_bit_for_bit():
    learner, policy, family = _learner(gym.spaces.Discrete(3), 0.01, 10, 0)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(32, 3)).astype(np.float32)
    before = [v.numpy().copy() for v in policy.trainable_variables]
    logs = learner.policy_update(obs, np.zeros(32, np.int32), np.zeros(32, np.float32))
    assert logs["step_accepted"] == 0.0 and logs["line_search_steps"] == 10.0
    for b, v in zip(before, policy.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())

"""backtracking_line_search alone, and the trust region through the real policy update."""
import math

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_trpo.config import TRPOConfig
from keras_trpo.distributions import family_for
from keras_trpo.optim.learner import Learner
from keras_trpo.optim.line_search import backtracking_line_search
from keras_trpo.policies.networks import build_policy_model, build_value_model


def quadratic(step):
    s = step[0]
    return s - s * s, s * s  # surrogate peaks at s = 0.5; KL grows as s^2


def search(evaluate, full, before=0.0, **kw):
    full, before = tf.convert_to_tensor(full, tf.float64), tf.convert_to_tensor(before, tf.float64)
    return backtracking_line_search(evaluate, full, before, **kw)


def test_accepts_the_first_step_inside_the_region_that_improves():
    # candidates 1, 0.5, 0.25, ...: s = 1 has KL 1 > 0.3; s = 0.5 has KL 0.25 and surrogate 0.25 > 0
    r = search(quadratic, [1.0], max_kl=0.3, max_backtracks=10, shrink=0.5)
    assert bool(r.accepted) and int(r.tries) == 2
    np.testing.assert_allclose(r.step.numpy(), [0.5])
    assert float(r.kl) == pytest.approx(0.25) and float(r.surrogate) == pytest.approx(0.25)


def test_full_step_accepted_on_the_first_try():
    r = search(quadratic, [0.4], max_kl=0.3, max_backtracks=10, shrink=0.5)
    assert bool(r.accepted) and int(r.tries) == 1
    np.testing.assert_allclose(r.step.numpy(), [0.4])


def test_kl_exactly_at_the_radius_is_accepted():
    r = search(lambda s: (s[0], tf.constant(0.25, tf.float64)), [1.0], max_kl=0.25, max_backtracks=3)
    assert bool(r.accepted) and int(r.tries) == 1


def test_needs_both_conditions_and_counts_every_try():
    # step k (k = 0, 1, ...) is 2 * 0.5^k. KL = s^2 is <= 0.3 from k = 2 (s = 0.5, KL 0.25) on, but the
    # surrogate -|s - 0.125| only improves on the baseline -0.2 once |s - 0.125| < 0.2: k = 3 (s = 0.25).
    seen = []

    def evaluate(step):
        seen.append(float(step[0]))
        s = step[0]
        return -tf.abs(s - 0.125), s * s

    r = search(evaluate, [2.0], before=-0.2, max_kl=0.3, max_backtracks=10, shrink=0.5)
    assert bool(r.accepted) and int(r.tries) == 4
    assert seen == [2.0, 1.0, 0.5, 0.25]  # eagerly, each candidate is evaluated once, in order
    np.testing.assert_allclose(r.step.numpy(), [0.25])
    assert float(r.surrogate) == pytest.approx(-0.125) and float(r.kl) == pytest.approx(0.0625)


def test_rejects_when_the_surrogate_does_not_improve():
    # every candidate is inside the trust region, but the surrogate only gets worse
    r = search(lambda s: (-s[0] ** 2, 0.0 * s[0]), [1.0], max_kl=1.0, max_backtracks=4, shrink=0.5)
    assert not bool(r.accepted) and int(r.tries) == 4
    np.testing.assert_array_equal(r.step.numpy(), [0.0])
    assert float(r.kl) == 0.0 and float(r.surrogate) == 0.0  # the values at theta_old


def test_equal_surrogate_is_not_an_improvement():
    r = search(lambda s: (tf.constant(1.0, tf.float64), 0.0 * s[0]), [1.0], before=1.0, max_kl=1.0, max_backtracks=3)
    assert not bool(r.accepted) and int(r.tries) == 3


def test_rejects_when_every_step_leaves_the_trust_region():
    r = search(quadratic, [10.0, -3.0], max_kl=1e-6, max_backtracks=3, shrink=0.8)
    assert not bool(r.accepted) and int(r.tries) == 3
    np.testing.assert_array_equal(r.step.numpy(), [0.0, 0.0])


def test_non_finite_candidates_are_rejected():
    def evaluate(step):
        s = step[0]
        return tf.where(s > 0.3, tf.constant(np.nan, tf.float64), s), 0.0 * s

    r = search(evaluate, [1.0], max_kl=1.0, max_backtracks=10, shrink=0.5)
    assert bool(r.accepted) and int(r.tries) == 3  # 1 and 0.5 give NaN, 0.25 is fine
    np.testing.assert_allclose(r.step.numpy(), [0.25])


@pytest.mark.parametrize("jit", [False, True])
def test_inside_tf_function(jit):
    fn = tf.function(lambda full: search(quadratic, full, max_kl=0.3, max_backtracks=10, shrink=0.5), jit_compile=jit)
    r = fn(tf.constant([1.0], tf.float64))
    assert bool(r.accepted) and int(r.tries) == 2
    np.testing.assert_allclose(r.step.numpy(), [0.5])


# ----------------------------------------------------------------------------- property: synthetic problems
@settings(max_examples=150, deadline=None)
@given(a=st.floats(0.01, 100.0), b=st.floats(-5.0, 5.0), c=st.floats(0.0, 30.0), wiggle=st.floats(0.0, 2.0),
       full=st.floats(-10.0, 10.0), max_kl=st.floats(1e-5, 1.0), steps=st.integers(1, 15), shrink=st.floats(0.05, 0.95),
       before=st.floats(-1.0, 1.0))
def test_result_matches_a_plain_python_search(a, b, c, wiggle, full, max_kl, steps, shrink, before):
    """Arbitrary (non-monotone) KL and surrogate curves: the accepted step is the first candidate
    full * shrink^i with KL <= max_kl and a strictly better surrogate, so its KL never exceeds max_kl."""

    def kl_np(s):
        return a * s * s * (1.0 + wiggle * math.sin(c * s) ** 2)

    def surr_np(s):
        return b * s - s * s + 0.3 * math.sin(3.0 * c * s)

    def evaluate(step):
        s = step[0]
        return b * s - s * s + 0.3 * tf.sin(3.0 * c * s), a * s * s * (1.0 + wiggle * tf.sin(c * s) ** 2)

    r = search(evaluate, [full], before=before, max_kl=max_kl, max_backtracks=steps, shrink=shrink)
    # tf.cast(shrink, float64) goes through float32 (a Python float becomes a float32 constant first), so the
    # library's candidates are full * float32(shrink)^i; the reference uses the same numbers.
    shrink = float(np.float32(shrink))
    candidates = [full * shrink**i for i in range(steps)]
    expected_index = next((i for i, s in enumerate(candidates) if kl_np(s) <= max_kl and surr_np(s) > before), None)
    # borderline candidates (within rounding of the thresholds) may go either way
    borderline = any(abs(kl_np(s) - max_kl) < 1e-9 * max_kl or abs(surr_np(s) - before) < 1e-9 for s in candidates)
    if bool(r.accepted):
        step = float(r.step[0])
        assert kl_np(step) <= max_kl * (1 + 1e-9) and float(r.kl) <= max_kl
        assert float(r.surrogate) > before
        assert step == pytest.approx(candidates[int(r.tries) - 1], rel=1e-12)
    else:
        assert float(r.step[0]) == 0.0 and int(r.tries) == steps and float(r.kl) == 0.0
    if not borderline:
        assert bool(r.accepted) == (expected_index is not None)
        if expected_index is not None:
            assert int(r.tries) == expected_index + 1


# ----------------------------------------------------------------------------- property: the real policy update
def _learner(space, max_kl, steps, seed, jit=False):
    obs_space = gym.spaces.Box(-1, 1, (3,))
    family = family_for(space)
    policy = build_policy_model(obs_space, family, hidden=(8,), seed=seed)
    value = build_value_model(obs_space, hidden=(8,), seed=seed)
    cfg = TRPOConfig(max_kl=max_kl, line_search_steps=steps, cg_iters=5, jit_compile=jit)
    return Learner(policy, value, family, cfg, keras.optimizers.Adam()), policy, family


SPACES = [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,)), gym.spaces.MultiDiscrete([2, 3]), gym.spaces.MultiBinary(2)]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(max_kl=st.floats(1e-4, 0.2), steps=st.integers(1, 10), seed=st.integers(0, 10_000), space=st.sampled_from(SPACES),
       adv_scale=st.floats(0.01, 100.0))
def test_policy_update_never_leaves_the_trust_region(max_kl, steps, seed, space, adv_scale):
    learner, policy, family = _learner(space, max_kl, steps, seed)
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, size=(64, 3)).astype(np.float32)
    before = [v.numpy().copy() for v in policy.trainable_variables]
    old_params = {k: v.numpy() for k, v in policy(obs).items()}
    old = family.make({k: tf.constant(v) for k, v in old_params.items()})
    actions = family.sample(old_params, rng)
    logs = learner.policy_update(obs, actions, (rng.normal(size=64) * adv_scale).astype(np.float32))
    kl = float(tf.reduce_mean(old.kl_divergence(family.make(policy(obs)))))  # recomputed independently
    assert kl <= max_kl * (1 + 1e-4) + 1e-7
    assert logs["kl"] <= max_kl * (1 + 1e-4) + 1e-7
    assert 1 <= logs["line_search_steps"] <= steps
    if logs["step_accepted"]:
        assert logs["surrogate_improvement"] > 0
        assert kl == pytest.approx(logs["kl"], rel=1e-3, abs=1e-7)
    else:
        assert logs["line_search_steps"] == steps and logs["kl"] == 0.0 and logs["surrogate_improvement"] == 0.0
        for b, v in zip(before, policy.trainable_variables):
            np.testing.assert_array_equal(b, v.numpy())  # restored bit for bit


@pytest.mark.parametrize("jit", [False, True])
def test_line_search_kl_setting_picks_which_kl_is_bounded(jit):
    # A Gaussian whose std moves: KL(old||new) and KL(new||old) differ, and the setting picks which is bounded.
    space = gym.spaces.Box(-1, 1, (2,))
    rng = np.random.default_rng(3)
    obs = rng.uniform(-1, 1, size=(256, 3)).astype(np.float32)
    for direction in ("old_new", "new_old"):
        learner, policy, family = _learner(space, 0.05, 10, 3, jit=jit)
        learner.config.line_search_kl = direction
        old_params = {k: v.numpy() for k, v in policy(obs).items()}
        actions = family.sample(old_params, rng)
        # advantages that reward actions far from the mean: the step widens the std
        adv = (np.square(actions - old_params["mean"]).sum(1) - 2.0).astype(np.float32)
        logs = learner.policy_update(obs, actions, adv)
        assert logs["step_accepted"] == 1.0
        new = {k: v.numpy().astype(np.float64) for k, v in policy(obs).items()}
        old = {k: v.astype(np.float64) for k, v in old_params.items()}

        def gauss_kl(p, q):  # closed form, summed over action dimensions, mean over states
            vp, vq = np.exp(2 * p["log_std"]), np.exp(2 * q["log_std"])
            return np.mean(np.sum(q["log_std"] - p["log_std"] + (vp + (p["mean"] - q["mean"]) ** 2) / (2 * vq) - 0.5, 1))

        forward, reverse = gauss_kl(old, new), gauss_kl(new, old)
        assert abs(forward - reverse) > 1e-3 * forward  # the two really differ here
        bounded = forward if direction == "old_new" else reverse
        assert logs["kl"] == pytest.approx(bounded, rel=1e-3)
        assert bounded <= 0.05 * (1 + 1e-4)


@pytest.mark.parametrize("jit", [False, True])
def test_rejected_update_leaves_the_policy_unchanged_bit_for_bit(jit):
    # zero advantages: the surrogate cannot improve, so every candidate is rejected
    learner, policy, family = _learner(gym.spaces.Box(-1, 1, (2,)), 0.01, 10, 0, jit=jit)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(32, 3)).astype(np.float32)
    before = [v.numpy().copy() for v in policy.trainable_variables]
    logs = learner.policy_update(obs, np.zeros((32, 2), np.float32), np.zeros(32, np.float32))
    assert logs["step_accepted"] == 0.0 and logs["line_search_steps"] == 10.0
    for b, v in zip(before, policy.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())


def test_accepted_update_improves_the_surrogate_as_predicted():
    learner, policy, family = _learner(gym.spaces.Discrete(3), 0.01, 10, 1)
    rng = np.random.default_rng(1)
    obs = rng.uniform(-1, 1, size=(128, 3)).astype(np.float32)
    actions = rng.integers(0, 3, size=128).astype(np.int32)
    adv = np.where(actions == 0, 1.0, -0.5).astype(np.float32)  # favour action 0
    p0_before = tf.nn.softmax(policy(obs)["logits"])[:, 0].numpy().mean()
    logs = learner.policy_update(obs, actions, adv)
    assert logs["step_accepted"] == 1.0 and 0 < logs["kl"] <= 0.01
    assert 0 < logs["surrogate_improvement"] and logs["expected_improvement"] > 0
    assert tf.nn.softmax(policy(obs)["logits"])[:, 0].numpy().mean() > p0_before

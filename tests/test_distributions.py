"""Each action family against NumPy / SciPy closed forms."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from scipy.special import log_softmax, softmax

from keras_trpo.distributions import family_for, gaussian_log_prob_np
from keras_trpo.spaces import UnsupportedSpaceError

RNG = np.random.default_rng(0)


def test_gaussian_log_prob_entropy_kl_match_scipy():
    fam = family_for(gym.spaces.Box(-1, 1, (3,)))
    mean, log_std = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3)) * 0.3
    x = RNG.normal(size=(5, 3))
    d = fam.make({"mean": tf.constant(mean), "log_std": tf.constant(log_std)})
    expected = stats.norm(mean, np.exp(log_std)).logpdf(x).sum(-1)
    np.testing.assert_allclose(d.log_prob(x).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(gaussian_log_prob_np(mean, log_std, x), expected, rtol=1e-6)
    np.testing.assert_allclose(d.entropy().numpy(), stats.norm(mean, np.exp(log_std)).entropy().sum(-1), rtol=1e-6)
    mean2, log_std2 = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3)) * 0.3
    d2 = fam.make({"mean": tf.constant(mean2), "log_std": tf.constant(log_std2)})
    s1, s2 = np.exp(log_std), np.exp(log_std2)
    kl = (np.log(s2 / s1) + (s1**2 + (mean - mean2) ** 2) / (2 * s2**2) - 0.5).sum(-1)
    np.testing.assert_allclose(d.kl_divergence(d2).numpy(), kl, rtol=1e-6)


def test_categorical_log_prob_entropy_kl():
    fam = family_for(gym.spaces.Discrete(4))
    p_logits, q_logits = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 4))
    a = RNG.integers(0, 4, size=6)
    p, q = fam.make({"logits": tf.constant(p_logits)}), fam.make({"logits": tf.constant(q_logits)})
    np.testing.assert_allclose(p.log_prob(a).numpy(), log_softmax(p_logits, -1)[np.arange(6), a], rtol=1e-6)
    pp = softmax(p_logits, -1)
    np.testing.assert_allclose(p.entropy().numpy(), -(pp * np.log(pp)).sum(-1), rtol=1e-6)
    kl = (pp * (log_softmax(p_logits, -1) - log_softmax(q_logits, -1))).sum(-1)
    np.testing.assert_allclose(p.kl_divergence(q).numpy(), kl, rtol=1e-5)


def test_multi_categorical_is_a_product_of_categoricals():
    fam = family_for(gym.spaces.MultiDiscrete([2, 4, 3]))
    logits = RNG.normal(size=(5, 9))
    other = RNG.normal(size=(5, 9))
    a = np.stack([RNG.integers(0, n, size=5) for n in (2, 4, 3)], -1)
    parts = np.split(logits, [2, 6], axis=-1)
    other_parts = np.split(other, [2, 6], axis=-1)
    d, e = fam.make({"logits": tf.constant(logits)}), fam.make({"logits": tf.constant(other)})
    lp = sum(log_softmax(p, -1)[np.arange(5), a[:, i]] for i, p in enumerate(parts))
    np.testing.assert_allclose(d.log_prob(a).numpy(), lp, rtol=1e-5)
    ent = sum(-(softmax(p, -1) * log_softmax(p, -1)).sum(-1) for p in parts)
    np.testing.assert_allclose(d.entropy().numpy(), ent, rtol=1e-5)
    kl = sum((softmax(p, -1) * (log_softmax(p, -1) - log_softmax(q, -1))).sum(-1) for p, q in zip(parts, other_parts))
    np.testing.assert_allclose(d.kl_divergence(e).numpy(), kl, rtol=1e-5, atol=1e-6)


def test_bernoulli():
    fam = family_for(gym.spaces.MultiBinary(3))
    logits = RNG.normal(size=(4, 3))
    x = RNG.integers(0, 2, size=(4, 3))
    p = 1 / (1 + np.exp(-logits))
    d = fam.make({"logits": tf.constant(logits)})
    np.testing.assert_allclose(d.log_prob(x).numpy(), stats.bernoulli(p).logpmf(x).sum(-1), rtol=1e-6)


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,)), gym.spaces.MultiDiscrete([3, 2]),
                                   gym.spaces.MultiBinary(4)])
def test_kl_of_a_policy_with_itself_is_zero(space):
    fam = family_for(space)
    params = {k: tf.constant(RNG.normal(size=(7, n))) for k, n in fam.head_sizes.items()}
    d = fam.make(params)
    np.testing.assert_allclose(d.kl_divergence(fam.make(params)).numpy(), 0.0, atol=1e-6)


def test_numpy_sampling_frequencies_match_softmax():
    fam = family_for(gym.spaces.Discrete(3))
    logits = np.array([[0.2, -1.0, 1.1]])
    draws = fam.sample({"logits": np.repeat(logits, 30_000, 0)}, np.random.default_rng(1))
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 30_000, softmax(logits[0]), atol=0.01)
    assert fam.mode({"logits": logits})[0] == 2


def test_gaussian_sampling_moments_and_mode():
    fam = family_for(gym.spaces.Box(-10, 10, (2,)))
    params = {"mean": np.full((40_000, 2), [0.5, -1.0]), "log_std": np.log([0.3, 2.0])}
    x = fam.sample(params, np.random.default_rng(2))
    np.testing.assert_allclose(x.mean(0), [0.5, -1.0], atol=0.03)
    np.testing.assert_allclose(x.std(0), [0.3, 2.0], rtol=0.02)
    np.testing.assert_array_equal(fam.mode({"mean": np.array([[1.0, 2.0]]), "log_std": np.zeros(2)}), [[1.0, 2.0]])


def test_to_env_clips_box_and_offsets_discrete():
    box = family_for(gym.spaces.Box(np.array([-1, 0], np.float32), np.array([1, 0.5], np.float32)))
    np.testing.assert_allclose(box.to_env(np.array([[-3.0, 0.2], [0.5, 9.0]])), [[-1, 0.2], [0.5, 0.5]], rtol=1e-6)
    assert box.to_env(np.zeros((1, 2))).dtype == np.float32
    disc = family_for(gym.spaces.Discrete(3, start=-1))
    np.testing.assert_array_equal(disc.to_env(np.array([0, 2])), [-1, 1])
    md = family_for(gym.spaces.MultiDiscrete([2, 3], start=[1, 5]))
    np.testing.assert_array_equal(md.to_env(np.array([[1, 2]])), [[2, 7]])


def test_unsupported_action_space():
    with pytest.raises(UnsupportedSpaceError, match="Text"):
        family_for(gym.spaces.Text(5))

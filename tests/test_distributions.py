"""Each action family against NumPy / SciPy closed forms."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from scipy.special import expit, log_softmax, softmax

from keras_trpo.distributions import family_for, gaussian_log_prob_np
from keras_trpo.spaces import UnsupportedSpaceError

RNG = np.random.default_rng(0)


def chi_square(counts, probs):
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


# Upper 1e-4 quantiles of chi^2 with k degrees of freedom: a correct sampler fails 1 in 10,000 seeds.
CHI2_CRIT = {k: stats.chi2.ppf(1 - 1e-4, k) for k in range(1, 8)}


# ----------------------------------------------------------------------------- diagonal Gaussian
def test_gaussian_log_prob_entropy_kl_match_scipy():
    fam = family_for(gym.spaces.Box(-1, 1, (3,)))
    assert fam.name == "diag_gaussian" and fam.head_sizes == {"mean": 3, "log_std": 3}
    mean, log_std = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3)) * 0.3
    x = RNG.normal(size=(5, 3))
    d = fam.make({"mean": tf.constant(mean), "log_std": tf.constant(log_std)})
    ref = stats.norm(mean, np.exp(log_std))
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref.logpdf(x).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(gaussian_log_prob_np(mean, log_std, x), ref.logpdf(x).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(d.entropy().numpy(), ref.entropy().sum(-1), rtol=1e-6)
    mean2, log_std2 = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3)) * 0.3
    d2 = fam.make({"mean": tf.constant(mean2), "log_std": tf.constant(log_std2)})
    s1, s2 = np.exp(log_std), np.exp(log_std2)
    kl = (np.log(s2 / s1) + (s1**2 + (mean - mean2) ** 2) / (2 * s2**2) - 0.5).sum(-1)
    np.testing.assert_allclose(d.kl_divergence(d2).numpy(), kl, rtol=1e-6)


def test_gaussian_sampling_moments_and_mode():
    fam = family_for(gym.spaces.Box(-10, 10, (2,)))
    params = {"mean": np.full((40_000, 2), [0.5, -1.0]), "log_std": np.log([0.3, 2.0])}
    x = fam.sample(params, np.random.default_rng(2))
    assert x.dtype == np.float32 and x.shape == (40_000, 2)
    # standard errors: 0.3/200 and 2/200 for the means; ~0.35% for the stds
    np.testing.assert_allclose(x.mean(0), [0.5, -1.0], atol=0.03)
    np.testing.assert_allclose(x.std(0), [0.3, 2.0], rtol=0.02)
    np.testing.assert_array_equal(fam.mode({"mean": np.array([[1.0, 2.0]]), "log_std": np.zeros(2)}), [[1.0, 2.0]])


def test_gaussian_samples_are_stored_unclipped_and_clipped_only_for_the_env():
    box = gym.spaces.Box(np.array([-1, 0], np.float32), np.array([1, 0.5], np.float32))
    fam = family_for(box)
    x = fam.sample({"mean": np.zeros((1000, 2)), "log_std": np.log([5.0, 5.0])}, np.random.default_rng(3))
    assert (x[:, 0] > 1).any() and (x[:, 0] < -1).any()  # stored form is the raw sample
    env = fam.to_env(x)
    assert env.dtype == np.float32 and all(box.contains(a) for a in env)
    np.testing.assert_allclose(fam.to_env(np.array([[-3.0, 0.2], [0.5, 9.0]])), [[-1, 0.2], [0.5, 0.5]], rtol=1e-6)


def test_gaussian_to_env_reshapes_multidimensional_boxes():
    box = gym.spaces.Box(-1, 1, (2, 2), np.float64)
    fam = family_for(box)
    assert fam.head_sizes == {"mean": 4, "log_std": 4}
    out = fam.to_env(np.array([[0.1, -2.0, 0.3, 2.0]]))
    assert out.shape == (1, 2, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out[0], [[0.1, -1.0], [0.3, 1.0]])


# ----------------------------------------------------------------------------- categorical
def test_categorical_log_prob_entropy_kl():
    fam = family_for(gym.spaces.Discrete(4))
    p_logits, q_logits = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 4))
    a = RNG.integers(0, 4, size=6)
    p, q = fam.make({"logits": tf.constant(p_logits)}), fam.make({"logits": tf.constant(q_logits)})
    # explicit softmax: p_i = exp(z_i) / sum_j exp(z_j)
    pp = np.exp(p_logits) / np.exp(p_logits).sum(-1, keepdims=True)
    qq = np.exp(q_logits) / np.exp(q_logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(p.log_prob(a).numpy(), np.log(pp[np.arange(6), a]), rtol=1e-6)
    np.testing.assert_allclose(p.entropy().numpy(), -(pp * np.log(pp)).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(p.kl_divergence(q).numpy(), (pp * np.log(pp / qq)).sum(-1), rtol=1e-5)


def test_categorical_sampling_frequencies_match_softmax():
    fam = family_for(gym.spaces.Discrete(3))
    logits = np.array([[0.2, -1.0, 1.1]])
    n = 20_000
    draws = fam.sample({"logits": np.repeat(logits, n, 0)}, np.random.default_rng(1))
    assert draws.dtype == np.int32 and draws.shape == (n,)
    counts = np.bincount(draws, minlength=3)
    assert chi_square(counts, softmax(logits[0])) < CHI2_CRIT[2]
    np.testing.assert_allclose(counts / n, softmax(logits[0]), atol=0.015)


def test_categorical_mode_and_discrete_start():
    fam = family_for(gym.spaces.Discrete(3, start=-1))
    np.testing.assert_array_equal(fam.mode({"logits": np.array([[0.2, -1.0, 1.1], [3.0, 0.0, 0.0]])}), [2, 0])
    np.testing.assert_array_equal(fam.to_env(np.array([0, 1, 2])), [-1, 0, 1])


# ----------------------------------------------------------------------------- multi-categorical
NVEC = (2, 4, 3)


def test_multi_categorical_is_a_product_of_softmaxes():
    fam = family_for(gym.spaces.MultiDiscrete(list(NVEC)))
    assert fam.head_sizes == {"logits": 9}
    logits, other = RNG.normal(size=(5, 9)), RNG.normal(size=(5, 9))
    a = np.stack([RNG.integers(0, n, size=5) for n in NVEC], -1)
    parts, other_parts = np.split(logits, [2, 6], axis=-1), np.split(other, [2, 6], axis=-1)
    d, e = fam.make({"logits": tf.constant(logits)}), fam.make({"logits": tf.constant(other)})
    lp = sum(log_softmax(p, -1)[np.arange(5), a[:, i]] for i, p in enumerate(parts))
    np.testing.assert_allclose(d.log_prob(a).numpy(), lp, rtol=1e-5)
    ent = sum(-(softmax(p, -1) * log_softmax(p, -1)).sum(-1) for p in parts)
    np.testing.assert_allclose(d.entropy().numpy(), ent, rtol=1e-5)
    kl = sum((softmax(p, -1) * (log_softmax(p, -1) - log_softmax(q, -1))).sum(-1) for p, q in zip(parts, other_parts))
    np.testing.assert_allclose(d.kl_divergence(e).numpy(), kl, rtol=1e-5, atol=1e-6)


def test_multi_categorical_padding_has_zero_probability_in_float32():
    fam = family_for(gym.spaces.MultiDiscrete([2, 4]))
    logits = RNG.normal(size=(3, 6)).astype(np.float32)
    padded = fam.rule.padded_logits(logits)
    assert padded.shape == (3, 2, 4)
    np.testing.assert_array_equal(padded[:, 0, :2], logits[:, :2])
    np.testing.assert_array_equal(padded[:, 1, :], logits[:, 2:])
    assert (padded[:, 0, 2:] <= -1e8).all()
    d = fam.make({"logits": tf.constant(logits)})
    assert np.isfinite(d.entropy().numpy()).all() and np.isfinite(d.kl_divergence(d).numpy()).all()
    # the padded columns can never be drawn, only the real ones
    draws = fam.sample({"logits": np.repeat(logits[:1], 5000, 0)}, np.random.default_rng(0))
    assert draws[:, 0].max() <= 1


def test_multi_categorical_sampling_frequencies_mode_and_to_env():
    space = gym.spaces.MultiDiscrete(list(NVEC), start=[1, 0, -2])
    fam = family_for(space)
    logits = np.array([[0.3, -0.3, 1.0, 0.0, -1.0, 0.5, 2.0, -2.0, 0.1]])
    n = 20_000
    draws = fam.sample({"logits": np.repeat(logits, n, 0)}, np.random.default_rng(5))
    assert draws.shape == (n, 3) and draws.dtype == np.int32
    for i, p in enumerate(np.split(logits[0], [2, 6])):
        counts = np.bincount(draws[:, i], minlength=len(p))
        assert len(counts) == len(p)
        assert chi_square(counts, softmax(p)) < CHI2_CRIT[len(p) - 1]
    np.testing.assert_array_equal(fam.mode({"logits": logits}), [[0, 0, 0]])
    env = fam.to_env(np.array([[1, 3, 2]]))
    np.testing.assert_array_equal(env, [[2, 3, 0]])
    assert space.contains(env[0])


# ----------------------------------------------------------------------------- Bernoulli
def test_bernoulli_log_prob_entropy_kl():
    fam = family_for(gym.spaces.MultiBinary(3))
    assert fam.head_sizes == {"logits": 3}
    logits, other = RNG.normal(size=(4, 3)) * 2, RNG.normal(size=(4, 3)) * 2
    x = RNG.integers(0, 2, size=(4, 3))
    p, q = expit(logits), expit(other)
    d, e = fam.make({"logits": tf.constant(logits)}), fam.make({"logits": tf.constant(other)})
    np.testing.assert_allclose(d.log_prob(x).numpy(), stats.bernoulli(p).logpmf(x).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(d.entropy().numpy(), stats.bernoulli(p).entropy().sum(-1), rtol=1e-6)
    kl = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).sum(-1)
    np.testing.assert_allclose(d.kl_divergence(e).numpy(), kl, rtol=1e-5)


def test_bernoulli_sampling_mode_and_to_env():
    space = gym.spaces.MultiBinary([2, 2])
    fam = family_for(space)
    logits = np.array([[-1.5, 0.0, 0.7, 3.0]])
    n = 20_000
    draws = fam.sample({"logits": np.repeat(logits, n, 0)}, np.random.default_rng(6))
    assert draws.shape == (n, 4) and set(np.unique(draws)) <= {0, 1}
    for j, pj in enumerate(expit(logits[0])):
        ones = draws[:, j].sum()
        assert chi_square(np.array([n - ones, ones]), np.array([1 - pj, pj])) < CHI2_CRIT[1]
    np.testing.assert_array_equal(fam.mode({"logits": logits}), [[0, 0, 1, 1]])
    env = fam.to_env(np.array([[0, 1, 1, 0]]))
    assert env.shape == (1, 2, 2) and env.dtype == space.dtype and space.contains(env[0])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("space", [gym.spaces.Text(5), gym.spaces.Dict({"a": gym.spaces.Discrete(2)}),
                                   gym.spaces.Tuple((gym.spaces.Discrete(2),))])
def test_unsupported_action_space(space):
    with pytest.raises(UnsupportedSpaceError, match=type(space).__name__):
        family_for(space)

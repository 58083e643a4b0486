"""The masked distribution in TensorFlow against the NumPy rule and closed forms, and the Fisher-vector
products on it against an explicit Fisher (Jacobian of the masked logits, closed-form Fisher in them)."""
import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit, log_softmax, softmax

from keras_trpo.config import TRPOConfig
from keras_trpo.distributions import family_for
from keras_trpo.optim.learner import Learner
from keras_trpo.policies.networks import build_policy_model, build_value_model
from tests.mask_envs import SPACES, mask_of
from tests.test_fisher import OBS, OBS_DIM, explicit_fisher_of

NAMES = {"discrete": "categorical", "multidiscrete": "multi_categorical", "multibinary": "bernoulli"}


def _case(kind, rows=6, seed=0):
    family = family_for(SPACES[kind])
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(rows, family.rule.noise_width)) * 1.5).astype(np.float32)
    mask = np.stack([mask_of(SPACES[kind], seed * 100 + r) for r in range(rows)])
    return family, logits, mask


def _segments(kind):
    """The categoricals of a layout: column ranges (one for Discrete, one per sub-space for MultiDiscrete)."""
    sizes = [SPACES[kind].n] if kind == "discrete" else list(SPACES[kind].nvec)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return [slice(int(a), int(a + n)) for a, n in zip(starts, sizes)]


def _masked_dist(family, logits, mask):
    return family.make(family.masked_params({"logits": tf.constant(logits)}, tf.constant(mask)))


@pytest.mark.parametrize("kind", list(SPACES))
def test_tf_masked_params_are_the_numpy_rule_s_exactly(kind):
    family, logits, mask = _case(kind)
    got = family.masked_params({"logits": tf.constant(logits)}, tf.constant(mask))["logits"].numpy()
    np.testing.assert_array_equal(got, family.rule.masked_logits(logits, mask))
    same = family.masked_params({"logits": tf.constant(logits)}, tf.constant(family.rule.all_valid(len(logits))))
    np.testing.assert_array_equal(same["logits"].numpy(), logits)  # all valid: unchanged


@pytest.mark.parametrize("kind", ["discrete", "multidiscrete"])
def test_masked_categoricals_probabilities_log_probs_entropy_and_kl_are_the_closed_forms(kind):
    family, logits, mask = _case(kind)
    _, new_logits, _ = _case(kind, seed=0)
    new_logits = new_logits + np.random.default_rng(9).normal(size=new_logits.shape).astype(np.float32)
    old, new = _masked_dist(family, logits, mask), _masked_dist(family, new_logits, mask)
    rows = len(logits)
    entropy, kl, log_p = np.zeros(rows), np.zeros(rows), []
    for seg in _segments(kind):
        m = mask[:, seg]
        p = softmax(np.where(m, logits[:, seg].astype(np.float64), -np.inf), axis=-1)  # over the valid support
        q = softmax(np.where(m, new_logits[:, seg].astype(np.float64), -np.inf), axis=-1)
        assert np.all(p[~m] == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy += -np.sum(np.where(m, p * np.log(p), 0), -1)
            kl += np.sum(np.where(m, p * (np.log(p) - np.log(q)), 0), -1)
        log_p.append(log_softmax(np.where(m, logits[:, seg].astype(np.float64), -np.inf), axis=-1))
    np.testing.assert_allclose(old.entropy().numpy(), entropy, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(old.kl_divergence(new).numpy(), kl, rtol=1e-4, atol=1e-6)
    # Every valid action's log-probability (the sum over sub-spaces), and the probabilities of invalid ones: 0.
    rng = np.random.default_rng(4)
    for _ in range(20):
        actions = np.stack([[rng.choice(np.flatnonzero(mask[r, seg])) for seg in _segments(kind)] for r in range(rows)])
        expected = sum(log_p[i][np.arange(rows), actions[:, i]] for i in range(len(_segments(kind))))
        tf_actions = actions[:, 0] if kind == "discrete" else actions
        np.testing.assert_allclose(old.log_prob(tf.constant(tf_actions, tf.int32)).numpy(), expected, rtol=1e-5, atol=1e-5)
    if kind == "discrete":
        np.testing.assert_array_equal(old.probs_parameter().numpy()[~mask], 0.0)
        np.testing.assert_allclose(old.probs_parameter().numpy(), softmax(np.where(mask, logits, -np.inf), -1), atol=1e-6)


def test_masked_bernoulli_forces_bits_and_keeps_the_free_ones():
    family, logits, mask = _case("multibinary")
    _, new_logits, _ = _case("multibinary", seed=5)
    pairs = mask.reshape(len(mask), -1, 2)
    free = pairs.all(-1)
    assert free.any() and (~free).any()
    must_one = pairs[..., 1] & ~pairs[..., 0]
    old, new = _masked_dist(family, logits, mask), _masked_dist(family, new_logits, mask)
    p = np.where(free, expit(logits.astype(np.float64)), must_one.astype(float))
    q = np.where(free, expit(new_logits.astype(np.float64)), must_one.astype(float))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(free, -(p * np.log(p) + (1 - p) * np.log(1 - p)), 0).sum(-1)
        kl = np.where(free, p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)), 0).sum(-1)
    np.testing.assert_allclose(old.entropy().numpy(), h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(old.kl_divergence(new).numpy(), kl, rtol=1e-4, atol=1e-6)
    bits = np.where(free, np.random.default_rng(1).integers(0, 2, free.shape), must_one).astype(np.int32)
    expected = np.where(free, np.log(np.where(bits == 1, p, 1 - p)), 0).sum(-1)
    np.testing.assert_allclose(old.log_prob(tf.constant(bits)).numpy(), expected, rtol=1e-5, atol=1e-6)
    flipped = np.where(free, bits, 1 - bits)  # a forced bit the other way: probability 0 (log -1e9)
    assert np.all(old.log_prob(tf.constant(flipped)).numpy()[(~free).any(-1)] < -1e8)


def test_gradients_through_the_masked_distribution_are_finite_and_zero_on_invalid_logits():
    for kind in SPACES:
        family, logits, mask = _case(kind)
        x = tf.Variable(logits)
        with tf.GradientTape() as tape:
            d = family.make(family.masked_params({"logits": x}, tf.constant(mask)))
            loss = tf.reduce_sum(d.entropy()) + tf.reduce_sum(d.kl_divergence(_masked_dist(family, logits * 0.5, mask)))
        g = tape.gradient(loss, x).numpy()
        assert np.isfinite(g).all(), kind
        if kind != "multibinary":
            np.testing.assert_array_equal(g[~mask], 0.0)
        else:
            np.testing.assert_array_equal(g[~mask.reshape(len(mask), -1, 2).all(-1)], 0.0)


# ----------------------------------------------------------------------------- Fisher-vector products
def _learner(kind, product, subsample=1, seed=4):
    family = family_for(SPACES[kind])
    model = build_policy_model(OBS, family, hidden=(4,), seed=seed, log_std_init=0.0)
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:  # away from the initial values: biases, large logits
        v.assign(v + rng.normal(scale=0.5, size=v.shape).astype(np.float32))
    config = TRPOConfig(fisher_product=product, fisher_subsample=subsample, cg_damping=0.0, jit_compile=False)
    value = build_value_model(OBS, hidden=(4,), seed=seed)
    return Learner(model, value, family, config, keras.optimizers.Adam()), model, family


@pytest.mark.parametrize("product", ["hvp", "gauss_newton"])
@pytest.mark.parametrize("kind", list(SPACES))
def test_masked_fisher_vector_products_equal_the_explicit_fisher_of_the_masked_distribution(kind, product):
    learner, model, family = _learner(kind, product)
    rows = 16
    obs = tf.constant(np.random.default_rng(0).uniform(-1, 1, size=(rows, OBS_DIM)), tf.float32)
    mask = tf.constant(np.stack([mask_of(SPACES[kind], r) for r in range(rows)]))
    old = {k: tf.stop_gradient(v) for k, v in learner._params((obs,), mask).items()}
    fvp = learner.fisher_product((obs,), old, mask)
    # Independently: J of the masked logits (zero rows where masked) and the closed-form Fisher in them,
    # diag(p) - p p^T per categorical with p = 0 on the invalid actions, p (1 - p) = 0 on forced bits.
    with np.errstate(over="ignore"):  # sigmoid(+-1e9) of a forced bit: exactly 1 or 0
        F = explicit_fisher_of(lambda: family.masked_params(model(obs), mask), model.trainable_variables,
                               NAMES[kind], family)
    unmasked = explicit_fisher_of(lambda: model(obs), model.trainable_variables, NAMES[kind], family)
    assert not np.allclose(F, unmasked, atol=1e-4)  # the mask matters here
    n = F.shape[0]
    for seed in range(3):
        v = np.random.default_rng(seed).normal(size=n)
        expected = F @ v
        np.testing.assert_allclose(fvp(tf.constant(v, tf.float32)).numpy(), expected, rtol=2e-3,
                                   atol=2e-4 * np.abs(expected).max())


def test_the_sub_sampled_fisher_takes_every_k_th_row_with_its_own_mask(monkeypatch):
    learner, model, family = _learner("discrete", "hvp", subsample=3)
    rows = 12
    rng = np.random.default_rng(1)
    obs = rng.uniform(-1, 1, size=(rows, OBS_DIM)).astype(np.float32)
    mask = np.stack([mask_of(SPACES["discrete"], r) for r in range(rows)])
    seen = []
    real = learner.fisher_product

    def spy(o, old, m=None):
        seen.append((o[0].numpy(), None if m is None else m.numpy(), old["logits"].numpy()))
        return real(o, old, m)

    monkeypatch.setattr(learner, "fisher_product", spy)
    actions = np.array([rng.choice(np.flatnonzero(m)) for m in mask], np.int32)
    learner._policy_update_impl((tf.constant(obs),), tf.constant(actions), tf.constant(rng.normal(size=rows), tf.float32),
                                tf.constant(mask))
    sub_obs, sub_mask, sub_logits = seen[0]
    np.testing.assert_array_equal(sub_obs, obs[::3])
    np.testing.assert_array_equal(sub_mask, mask[::3])
    np.testing.assert_array_equal(sub_logits[~mask[::3]], np.float32(-1e9))  # pi_old's masked logits

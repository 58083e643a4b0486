"""fisher_vector_product against the explicit Fisher matrix of a tiny network."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from keras_trpo.distributions import family_for
from keras_trpo.fisher import fisher_vector_product, flatten, unflatten
from keras_trpo.networks import build_policy_model

OBS = gym.spaces.Box(-1, 1, (2,))


def explicit_fisher(model, family, obs):
    """F = mean_s J(s)^T M(s) J(s): J = d(distribution parameters)/d(theta), M the Fisher of the
    distribution in those parameters (closed form), averaged over the batch."""
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        params = model(obs)
    jac = {}
    for k, out in params.items():  # each: [B, d, *var_shape]; unconnected (mean vs log_std) -> zeros
        js = tape.jacobian(out, variables)
        jac[k] = [tf.zeros(list(out.shape) + list(var.shape)) if j is None else j for j, var in zip(js, variables)]
    B = obs.shape[0]
    flat_jac = {k: np.concatenate([j.numpy().reshape(B, params[k].shape[1], -1) for j in js], -1) for k, js in jac.items()}
    n = flat_jac[next(iter(flat_jac))].shape[-1]
    F = np.zeros((n, n))
    for b in range(B):
        if family.name == "categorical":
            p = tf.nn.softmax(params["logits"][b]).numpy().astype(np.float64)
            M = np.diag(p) - np.outer(p, p)
            J = flat_jac["logits"][b]
        else:  # diagonal Gaussian in (mean, log_std): diag(1/sigma^2) and 2 per log_std
            sigma2 = np.exp(2 * params["log_std"][b].numpy().astype(np.float64))
            M = np.diag(np.concatenate([1 / sigma2, np.full_like(sigma2, 2.0)]))
            J = np.concatenate([flat_jac["mean"][b], flat_jac["log_std"][b]], 0)
        F += J.T @ M @ J
    return F / B


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))], ids=["categorical", "gaussian"])
def test_fvp_equals_explicit_fisher_times_vector(space):
    family = family_for(space)
    model = build_policy_model(OBS, family, hidden=(3,), seed=4, log_std_init=-0.3)
    rng = np.random.default_rng(0)
    # Move the log-std and biases off their initial values so nothing is trivially zero.
    for v in model.trainable_variables:
        v.assign(v + rng.normal(scale=0.3, size=v.shape).astype(np.float32))
    obs = tf.constant(rng.uniform(-1, 1, size=(16, 2)), tf.float32)
    old = family.make({k: tf.stop_gradient(v) for k, v in model(obs).items()})

    def mean_kl():
        return tf.reduce_mean(old.kl_divergence(family.make(model(obs))))

    F = explicit_fisher(model, family, obs)
    n = F.shape[0]
    assert n == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert np.linalg.matrix_rank(F, tol=1e-8) > 1
    for damping in (0.0, 0.1):
        for seed in range(3):
            v = np.random.default_rng(seed).normal(size=n)
            fvp = fisher_vector_product(mean_kl, model.trainable_variables, tf.constant(v, tf.float32), damping)
            np.testing.assert_allclose(fvp.numpy(), F @ v + damping * v, rtol=2e-3, atol=2e-4)


def test_flatten_unflatten_round_trip():
    vs = [tf.Variable(np.arange(6.0).reshape(2, 3), dtype=tf.float32), tf.Variable([7.0]), tf.Variable(tf.ones((2, 1, 2)))]
    flat = flatten([tf.convert_to_tensor(v) for v in vs])
    assert flat.shape == (11,)
    for got, v in zip(unflatten(flat, vs), vs):
        np.testing.assert_array_equal(got.numpy(), v.numpy())

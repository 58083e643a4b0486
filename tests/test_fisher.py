"""fisher_vector_product against the explicit Fisher matrix of a tiny network.

The reference is built independently of the nested-tape Hessian-vector product:
F = mean_s J(s)^T M(s) J(s), with J(s) the Jacobian of the distribution parameters
w.r.t. the flat network parameters (tf.GradientTape.jacobian) and M(s) the closed-form
Fisher of the distribution in those parameters.
"""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from keras_trpo.distributions import family_for
from keras_trpo.optim.fisher import (fisher_operator, fisher_vector_product, flat_gradient, flatten,
                                    gauss_newton_vector_product, unflatten)
from keras_trpo.policies.networks import build_policy_model

OBS_DIM = 3
OBS = gym.spaces.Box(-1, 1, (OBS_DIM,))
SPACES = {
    "categorical": gym.spaces.Discrete(3),
    "diag_gaussian": gym.spaces.Box(-1, 1, (2,)),
    "multi_categorical": gym.spaces.MultiDiscrete([2, 3]),
    "bernoulli": gym.spaces.MultiBinary(2),
}


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def categorical_fisher(logits):
    p = softmax(logits)
    return np.diag(p) - np.outer(p, p)


def distribution_fisher(name, family, params, b):
    """Closed-form Fisher of one state's distribution in its parameters, and the parameter order."""
    if name == "categorical":
        return categorical_fisher(params["logits"][b]), ["logits"]
    if name == "multi_categorical":  # independent categoricals: block diagonal
        blocks = np.split(params["logits"][b], np.cumsum(family.nvec)[:-1])
        m = np.zeros((sum(family.nvec),) * 2)
        offset = 0
        for block in blocks:
            m[offset:offset + len(block), offset:offset + len(block)] = categorical_fisher(block)
            offset += len(block)
        return m, ["logits"]
    if name == "bernoulli":  # in logits: p (1 - p) per coordinate
        p = 1 / (1 + np.exp(-params["logits"][b]))
        return np.diag(p * (1 - p)), ["logits"]
    # diagonal Gaussian in (mean, log_std): 1/sigma^2 for each mean, 2 for each log_std
    sigma2 = np.exp(2 * params["log_std"][b])
    return np.diag(np.concatenate([1 / sigma2, np.full_like(sigma2, 2.0)])), ["mean", "log_std"]


def explicit_fisher_of(outputs_fn, variables, name, family):
    """F = mean over the batch of J^T M J: J the Jacobian of each row's distribution parameters
    (``outputs_fn()``, a dict of ``[B, d]``) in ``variables``, M the distribution's closed-form
    Fisher in them. ``[n, n]`` with n the variables' total size."""
    with tf.GradientTape(persistent=True) as tape:
        outputs = outputs_fn()
    params = {k: v.numpy().astype(np.float64) for k, v in outputs.items()}
    batch = next(iter(outputs.values())).shape[0]
    jac = {}
    for key, out in outputs.items():
        parts = tape.jacobian(out, variables)  # each [B, d, *var.shape]; None where unconnected
        parts = [np.zeros(list(out.shape) + list(v.shape)) if j is None else j.numpy() for j, v in zip(parts, variables)]
        jac[key] = np.concatenate([j.reshape(batch, out.shape[1], -1) for j in parts], -1).astype(np.float64)
    del tape
    n = jac[next(iter(jac))].shape[-1]
    F = np.zeros((n, n))
    for b in range(batch):
        m, order = distribution_fisher(name, family, params, b)
        J = np.concatenate([jac[k][b] for k in order], 0)
        F += J.T @ m @ J
    return F / batch


def explicit_fisher(model, name, family, obs):
    return explicit_fisher_of(lambda: model(obs), model.trainable_variables, name, family)


def tiny_policy(name, seed=4):
    family = family_for(SPACES[name])
    model = build_policy_model(OBS, family, hidden=(4,), seed=seed, log_std_init=-0.3)
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:  # off the initial values: non-zero biases, log-std, large logits
        v.assign(v + rng.normal(scale=0.5, size=v.shape).astype(np.float32))
    return model, family


@pytest.mark.parametrize("name", list(SPACES))
def test_fvp_equals_explicit_fisher_times_vector(name):
    model, family = tiny_policy(name)
    rng = np.random.default_rng(0)
    obs = tf.constant(rng.uniform(-1, 1, size=(16, OBS_DIM)), tf.float32)
    old = family.make({k: tf.stop_gradient(v) for k, v in model(obs).items()})

    def mean_kl():
        return tf.reduce_mean(old.kl_divergence(family.make(model(obs))))

    F = explicit_fisher(model, name, family, obs)
    n = F.shape[0]
    assert n == sum(int(np.prod(v.shape)) for v in model.trainable_variables) < 60
    np.testing.assert_allclose(F, F.T, atol=1e-10)
    assert np.linalg.eigvalsh(F).min() > -1e-8 and np.linalg.matrix_rank(F, tol=1e-6) > 2
    for damping in (0.0, 0.1):
        for seed in range(3):
            v = np.random.default_rng(seed).normal(size=n)
            fvp = fisher_vector_product(mean_kl, model.trainable_variables, tf.constant(v, tf.float32), damping)
            expected = F @ v + damping * v
            np.testing.assert_allclose(fvp.numpy(), expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())


def test_fvp_inside_tf_function_matches_eager():
    model, family = tiny_policy("diag_gaussian")
    obs = tf.constant(np.random.default_rng(1).uniform(-1, 1, size=(8, OBS_DIM)), tf.float32)
    old = family.make({k: tf.stop_gradient(v) for k, v in model(obs).items()})
    n = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    v = tf.constant(np.random.default_rng(2).normal(size=n), tf.float32)

    def fvp(vec):
        kl = lambda: tf.reduce_mean(old.kl_divergence(family.make(model(obs))))  # noqa: E731
        return fisher_vector_product(kl, model.trainable_variables, vec, 0.05)

    np.testing.assert_allclose(tf.function(fvp)(v).numpy(), fvp(v).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_one_operator_serves_every_product_of_a_graph_loop(jit):
    """``fisher_operator`` runs the forward pass and the KL's gradient once; the products CG takes from it
    inside a ``tf.while_loop`` (each from the previous one, as CG's are) equal the explicit Fisher's."""
    name = "diag_gaussian"
    model, family = tiny_policy(name)
    obs = tf.constant(np.random.default_rng(3).uniform(-1, 1, size=(12, OBS_DIM)), tf.float32)
    old = family.make({k: tf.stop_gradient(v) for k, v in model(obs).items()})
    n = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    F = explicit_fisher(model, name, family, obs) + 0.1 * np.eye(n)
    v0 = np.random.default_rng(4).normal(size=n)

    @tf.function(jit_compile=jit, autograph=False)
    def chain(v):
        product = fisher_operator(lambda: tf.reduce_mean(old.kl_divergence(family.make(model(obs)))),
                                  model.trainable_variables, 0.1)
        _, out = tf.while_loop(lambda i, x: i < 3, lambda i, x: (i + 1, product(x) / tf.norm(x)),
                               (tf.constant(0), v))
        return out

    expected = v0
    for _ in range(3):
        expected = F @ expected / np.linalg.norm(expected)
    got = chain(tf.constant(v0, tf.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())


def kl_space_params(name, batch, rng):
    family = family_for(SPACES[name])
    return family, {k: tf.constant(rng.normal(size=(batch, n)) * 2, tf.float32) for k, n in family.head_sizes.items()}


@pytest.mark.parametrize("name", list(SPACES))
def test_kl_of_a_policy_with_itself_is_zero(name):
    family, params = kl_space_params(name, 7, np.random.default_rng(3))
    assert family.name == name
    d = family.make(params)
    kl = d.kl_divergence(family.make(params)).numpy()
    assert kl.shape == (7,)
    np.testing.assert_allclose(kl, 0.0, atol=1e-6)
    # and it is strictly positive for a different policy
    _, other = kl_space_params(name, 7, np.random.default_rng(4))
    assert (d.kl_divergence(family.make(other)).numpy() > 0).all()


def test_flatten_unflatten_round_trip():
    vs = [tf.Variable(np.arange(6.0).reshape(2, 3), dtype=tf.float32), tf.Variable([7.0]), tf.Variable(tf.ones((2, 1, 2)))]
    flat = flatten([tf.convert_to_tensor(v) for v in vs])
    assert flat.shape == (11,)
    np.testing.assert_array_equal(flat.numpy()[:7], [0, 1, 2, 3, 4, 5, 7])
    for got, v in zip(unflatten(flat, vs), vs):
        np.testing.assert_array_equal(got.numpy(), v.numpy())


def test_flat_gradient_gives_zeros_for_unconnected_variables():
    a, b = tf.Variable([1.0, 2.0]), tf.Variable([[3.0]])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(a * a)
    np.testing.assert_array_equal(flat_gradient(tape, y, [a, b]).numpy(), [2.0, 4.0, 0.0])


# ----------------------------------------------------------------------------- Gauss-Newton product
def gn_and_hvp(name, obs, v, damping, shift=0.0):
    """Both products, at theta_old (shift 0) or at parameters moved away from it."""
    model, family = tiny_policy(name)
    old = family.make({k: tf.stop_gradient(t) for k, t in model(obs).items()})
    rng = np.random.default_rng(7)
    for var in model.trainable_variables:
        var.assign(var + shift * rng.normal(size=var.shape).astype(np.float32))

    def kl_of(out):
        return tf.reduce_mean(old.kl_divergence(family.make(out)))

    hvp = fisher_vector_product(lambda: kl_of(model(obs)), model.trainable_variables, v, damping)
    gn = gauss_newton_vector_product(lambda: model(obs), kl_of, model.trainable_variables, v, damping)
    return gn.numpy(), hvp.numpy(), model, family


@pytest.mark.parametrize("name", list(SPACES))
def test_gauss_newton_product_equals_the_hvp_and_the_explicit_fisher_at_theta_old(name):
    obs = tf.constant(np.random.default_rng(0).uniform(-1, 1, size=(16, OBS_DIM)), tf.float32)
    model, family = tiny_policy(name)
    F = explicit_fisher(model, name, family, obs)
    for damping in (0.0, 0.1):
        v = np.random.default_rng(1).normal(size=F.shape[0])
        gn, hvp, _, _ = gn_and_hvp(name, obs, tf.constant(v, tf.float32), damping)
        scale = np.abs(hvp).max()
        np.testing.assert_allclose(gn, hvp, rtol=1e-5, atol=1e-5 * scale)
        expected = F @ v + damping * v
        np.testing.assert_allclose(gn, expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name", ["categorical", "diag_gaussian"])
def test_away_from_theta_old_only_the_hvp_has_the_curvature_term(name):
    """The two products are different functions: they agree exactly where TRPO uses them."""
    obs = tf.constant(np.random.default_rng(0).uniform(-1, 1, size=(16, OBS_DIM)), tf.float32)
    n = sum(int(np.prod(v.shape)) for v in tiny_policy(name)[0].trainable_variables)
    v = tf.constant(np.random.default_rng(1).normal(size=n), tf.float32)
    gn, hvp, _, _ = gn_and_hvp(name, obs, v, 0.0, shift=0.5)
    assert np.abs(gn - hvp).max() > 1e-2 * np.abs(hvp).max()


def test_gauss_newton_product_under_xla_matches_eager():
    model, family = tiny_policy("diag_gaussian")
    obs = tf.constant(np.random.default_rng(1).uniform(-1, 1, size=(8, OBS_DIM)), tf.float32)
    old = family.make({k: tf.stop_gradient(t) for k, t in model(obs).items()})
    n = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    v = tf.constant(np.random.default_rng(2).normal(size=n), tf.float32)

    def gn(vec):
        return gauss_newton_vector_product(lambda: model(obs), lambda out: tf.reduce_mean(
            old.kl_divergence(family.make(out))), model.trainable_variables, vec, 0.05)

    np.testing.assert_allclose(tf.function(gn, jit_compile=True)(v).numpy(), gn(v).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_trpo_step_is_the_same_with_either_product(env_id):
    import keras_trpo

    agents = [keras_trpo.TRPO(env_id, seed=2, n_envs=2, n_steps=256, fisher_product=p) for p in ("hvp", "gauss_newton")]
    rollout = agents[0]._collect(256)
    obs = rollout.obs.reshape(512, -1)
    actions = rollout.actions.reshape((512,) + rollout.actions.shape[2:])
    adv = np.random.default_rng(0).normal(size=512).astype(np.float32)
    logs = [a.learner.policy_update(obs, actions, adv) for a in agents]
    assert logs[0]["step_accepted"] == logs[1]["step_accepted"] == 1.0
    np.testing.assert_allclose(logs[1]["kl"], logs[0]["kl"], rtol=1e-3)
    np.testing.assert_allclose(logs[1]["expected_improvement"], logs[0]["expected_improvement"], rtol=1e-3)
    for w_gn, w_hvp in zip(agents[1].policy_model.get_weights(), agents[0].policy_model.get_weights()):
        np.testing.assert_allclose(w_gn, w_hvp, rtol=1e-3, atol=1e-5)
    for a in agents:
        a.close()

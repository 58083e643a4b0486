"""``fisher_subsample``: the TRPO step with the Fisher of every k-th sample, against a closed form.

The reference solves ``(F_k + damping I) s = g`` exactly with NumPy, with ``F_k`` the explicit
Fisher (Jacobians and the distribution's closed-form Fisher, ``test_fisher.explicit_fisher``) on
``obs[::k]`` and ``g`` the surrogate's gradient on the whole batch, and scales it to the trust-region
edge; the learner's step (CG on Fisher-vector products, then the line search) must be that step.
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_trpo
from keras_trpo.config import ConfigError
from keras_trpo.optim.fisher import flat_gradient, flatten
from tests.test_fisher import explicit_fisher

N_STEPS = 96


def _agent(k: int, env_id: str = "CartPole-v1") -> keras_trpo.TRPO:
    # A 4-unit network has few enough parameters for an explicit Fisher and for CG to converge.
    return keras_trpo.TRPO(env_id, seed=3, n_envs=1, n_steps=N_STEPS, hidden_sizes=(4,), cg_iters=200,
                           cg_residual_tol=1e-30, cg_damping=0.05, max_kl=0.01, fisher_subsample=k, jit_compile=False)


def _closed_form_step(agent, obs, actions, adv, k):
    model, family, cfg = agent.policy_model, agent.family, agent.config
    variables = model.trainable_variables
    old = family.make({n: tf.stop_gradient(v) for n, v in model(obs).items()})
    old_lp = tf.stop_gradient(old.log_prob(actions))
    with tf.GradientTape() as tape:
        surrogate = tf.reduce_mean(tf.exp(family.make(model(obs)).log_prob(actions) - old_lp) * adv)
    g = flat_gradient(tape, surrogate, variables).numpy().astype(np.float64)
    name = "categorical" if "logits" in model(obs[:1]) else "diag_gaussian"
    F = explicit_fisher(model, name, family, obs[::k]) + cfg.cg_damping * np.eye(g.size)
    s = np.linalg.solve(F, g)
    return s * np.sqrt(2 * cfg.max_kl / (s @ F @ s))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_the_step_uses_the_fisher_of_every_kth_sample(env_id):
    k = 4
    agent = _agent(k, env_id)
    r = agent._collect(N_STEPS)
    obs = tf.constant(r.obs.reshape(N_STEPS, -1))
    actions = tf.constant(r.actions.reshape((N_STEPS,) + r.actions.shape[2:]), agent.family.tf_action_dtype)
    adv = tf.constant(np.random.default_rng(0).normal(size=N_STEPS).astype(np.float32))
    expected = _closed_form_step(agent, obs, actions, adv, k)
    whole_batch = _closed_form_step(agent, obs, actions, adv, 1)
    theta_old = flatten(agent.policy_model.trainable_variables).numpy()
    logs = agent.learner.policy_update(obs.numpy(), actions.numpy(), adv.numpy())
    step = flatten(agent.policy_model.trainable_variables).numpy() - theta_old
    agent.close()
    assert logs["step_accepted"] == 1.0
    shrink = agent.config.line_search_shrink ** (logs["line_search_steps"] - 1)
    expected, whole_batch = expected * shrink, whole_batch * shrink
    np.testing.assert_allclose(step, expected, rtol=2e-2, atol=2e-3 * np.abs(expected).max())
    # Not vacuous: the whole batch's Fisher gives a step that is measurably another one.
    assert np.linalg.norm(step - expected) * 5 < np.linalg.norm(whole_batch - expected)


def test_fisher_subsample_is_validated():
    with pytest.raises(ConfigError, match="fisher_subsample"):
        keras_trpo.TRPOConfig().replace(fisher_subsample=0)

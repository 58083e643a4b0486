"""The TRPO step in closed form, and the learner's step on the same batch, for the step tests.

``closed_form_step`` solves ``(F + damping I) s = g`` exactly with NumPy, ``F`` the explicit Fisher
(``test_fisher.explicit_fisher``: Jacobians and the distribution's closed-form Fisher) on ``fisher_obs``
and ``g`` the surrogate's gradient on the whole batch plus ``extra_gradient``, and scales ``s`` to the
trust-region edge. ``learner_step`` runs the agent's TRPO update (CG on Fisher-vector products, then the
line search) and returns the parameter change and its logs.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_trpo.optim.fisher import flat_gradient, flatten
from tests.test_fisher import explicit_fisher


def rollout_batch(agent, n_steps: int, seed: int):
    """``(obs [n, d], actions [n, ...], advantages [n])`` from one rollout of ``agent`` (one env), with
    standard-normal advantages drawn with ``seed``."""
    r = agent._collect(n_steps)
    obs = tf.constant(r.obs.reshape(n_steps, -1))
    actions = tf.constant(r.actions.reshape((n_steps,) + r.actions.shape[2:]), agent.family.tf_action_dtype)
    adv = tf.constant(np.random.default_rng(seed).normal(size=n_steps).astype(np.float32))
    return obs, actions, adv


def closed_form_step(agent, obs, actions, adv, fisher_obs, extra_gradient: Optional[np.ndarray] = None) -> np.ndarray:
    """The full TRPO step ``[n]`` (before any backtracking) for the agent's policy and config."""
    model, family, cfg = agent.policy_model, agent.family, agent.config
    variables = model.trainable_variables
    old = family.make({n: tf.stop_gradient(v) for n, v in model(obs).items()})
    old_lp = tf.stop_gradient(old.log_prob(actions))
    with tf.GradientTape() as tape:
        surrogate = tf.reduce_mean(tf.exp(family.make(model(obs)).log_prob(actions) - old_lp) * adv)
    g = flat_gradient(tape, surrogate, variables).numpy().astype(np.float64)
    if extra_gradient is not None:
        g = g + extra_gradient
    name = "categorical" if "logits" in model(obs[:1]) else "diag_gaussian"
    F = explicit_fisher(model, name, family, fisher_obs) + cfg.cg_damping * np.eye(g.size)
    s = np.linalg.solve(F, g)
    return s * np.sqrt(2 * cfg.max_kl / (s @ F @ s))


def learner_step(agent, obs, actions, adv) -> tuple[np.ndarray, dict, float]:
    """(the parameter change ``[n]``, the update's logs, the line search's shrink factor of the step it took)."""
    theta_old = flatten(agent.policy_model.trainable_variables).numpy()
    logs = agent.learner.policy_update(obs.numpy(), actions.numpy(), adv.numpy())
    step = flatten(agent.policy_model.trainable_variables).numpy() - theta_old
    return step, logs, agent.config.line_search_shrink ** (logs["line_search_steps"] - 1)


def assert_learner_takes(agent, obs, actions, adv, expected: np.ndarray, other: np.ndarray) -> None:
    """The learner's step on the batch is ``expected`` (a full closed-form step, scaled by the line search's
    shrink), and measurably not ``other`` (the closed form without what is under test), so the check can fail."""
    step, logs, shrink = learner_step(agent, obs, actions, adv)
    assert logs["step_accepted"] == 1.0
    expected, other = expected * shrink, other * shrink
    np.testing.assert_allclose(step, expected, rtol=2e-2, atol=2e-3 * np.abs(expected).max())
    assert np.linalg.norm(step - expected) * 5 < np.linalg.norm(other - expected)

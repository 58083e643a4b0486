"""``entropy_coef``: the TRPO step on ``E[ratio A] + c E[H(pi)]``, against a closed form.

The reference gradient is built without the distributions' ``entropy()``: for the diagonal Gaussian
(state-independent log-std) the entropy's gradient is ``c`` on each log-std entry and 0 elsewhere; for
the categorical it is taken through ``-sum p log p`` written out from the logits. The step is then
solved exactly with the explicit Fisher (``test_fisher.explicit_fisher``) and scaled to the
trust-region edge, as ``test_fisher_subsample`` does.
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_trpo
from keras_trpo.config import ConfigError
from keras_trpo.optim.fisher import flat_gradient
from tests.trpo_steps import assert_learner_takes, closed_form_step, rollout_batch

N_STEPS = 64
COEF = 0.05


def _agent(env_id: str, coef: float) -> keras_trpo.TRPO:
    return keras_trpo.TRPO(env_id, seed=5, n_envs=1, n_steps=N_STEPS, hidden_sizes=(4,), cg_iters=200,
                           cg_residual_tol=1e-30, cg_damping=0.05, max_kl=0.01, entropy_coef=coef,
                           jit_compile=False)


def _entropy_gradient(model, obs) -> np.ndarray:
    """d mean H / d theta, [n], without the distribution objects."""
    variables = model.trainable_variables
    if "logits" in model(obs[:1]):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(obs)["logits"], tf.float64)
            log_p = logits - tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
            entropy = tf.reduce_mean(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1))
        return flat_gradient(tape, entropy, variables).numpy().astype(np.float64)
    # H = sum_i (log_std_i + 0.5 log(2 pi e)) for every state: d/d log_std = 1, 0 for the rest.
    return np.concatenate([np.full(v.shape, 1.0 if "log_std" in v.path else 0.0).ravel() for v in variables])


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_the_step_follows_the_surrogate_plus_the_entropy_bonus(env_id):
    agent = _agent(env_id, COEF)
    obs, actions, adv = rollout_batch(agent, N_STEPS, seed=1)
    expected = closed_form_step(agent, obs, actions, adv, obs, COEF * _entropy_gradient(agent.policy_model, obs))
    without = closed_form_step(agent, obs, actions, adv, obs)
    try:  # not vacuous: without the bonus the step is measurably another one
        assert_learner_takes(agent, obs, actions, adv, expected, without)
    finally:
        agent.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_with_no_advantage_the_bonus_alone_raises_the_entropy(env_id):
    agent = _agent(env_id, COEF)
    rng = np.random.default_rng(2)
    for v in agent.policy_model.trainable_variables:  # off the initial near-uniform policy (maximal entropy)
        v.assign(v + rng.normal(scale=0.5, size=v.shape).astype(np.float32))
    obs, actions, _ = rollout_batch(agent, N_STEPS, seed=1)
    before = float(tf.reduce_mean(agent.family.make(agent.policy_model(obs)).entropy()))
    logs = agent.learner.policy_update(obs.numpy(), actions.numpy(), np.zeros(N_STEPS, np.float32))
    after = float(tf.reduce_mean(agent.family.make(agent.policy_model(obs)).entropy()))
    agent.close()
    assert logs["entropy"] == pytest.approx(before, rel=1e-5)
    assert logs["step_accepted"] == 1.0 and logs["kl"] <= 0.01 * (1 + 1e-4)
    assert after > before + 1e-3
    # The line search accepted the gain it measured: COEF times the entropy's rise.
    assert logs["surrogate_improvement"] == pytest.approx(COEF * (after - before), rel=1e-3)


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf"), True, "0.01"])
def test_entropy_coef_is_validated(bad):
    with pytest.raises(ConfigError, match="entropy_coef"):
        keras_trpo.TRPOConfig().replace(entropy_coef=bad)


def test_the_bonus_trains_a_masked_policy():
    # The masked distribution's entropy (forbidden actions at a finite floor logit) stays finite. A recurrent
    # policy's rows reach the same family.entropy (the learner flattens its sequences first), and the
    # CartPoleNoVel study trained 24 of them with the bonus.
    agent = keras_trpo.TRPO("Taxi-v4", seed=0, n_envs=2, n_steps=64, entropy_coef=0.05, action_masks="on")
    history = agent.fit(256, verbose=0).history
    agent.close()
    assert np.all(np.isfinite(history["entropy"])) and np.all(np.isfinite(history["kl"]))
    assert history["step_accepted"] == [1.0, 1.0]
    assert history["invalid_actions"] == [0.0, 0.0]

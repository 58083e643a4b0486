"""``fisher_subsample``: the TRPO step with the Fisher of every k-th sample, against a closed form.

The reference solves ``(F_k + damping I) s = g`` exactly with NumPy, with ``F_k`` the explicit
Fisher (Jacobians and the distribution's closed-form Fisher, ``test_fisher.explicit_fisher``) on
``obs[::k]`` and ``g`` the surrogate's gradient on the whole batch, and scales it to the trust-region
edge; the learner's step (CG on Fisher-vector products, then the line search) must be that step.
"""
import pytest

import keras_trpo
from keras_trpo.config import ConfigError
from tests.trpo_steps import assert_learner_takes, closed_form_step, rollout_batch

N_STEPS = 96


def _agent(k: int, env_id: str = "CartPole-v1") -> keras_trpo.TRPO:
    # A 4-unit network has few enough parameters for an explicit Fisher and for CG to converge.
    return keras_trpo.TRPO(env_id, seed=3, n_envs=1, n_steps=N_STEPS, hidden_sizes=(4,), cg_iters=200,
                           cg_residual_tol=1e-30, cg_damping=0.05, max_kl=0.01, fisher_subsample=k, jit_compile=False)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_the_step_uses_the_fisher_of_every_kth_sample(env_id):
    k = 4
    agent = _agent(k, env_id)
    obs, actions, adv = rollout_batch(agent, N_STEPS, seed=0)
    expected = closed_form_step(agent, obs, actions, adv, obs[::k])
    whole_batch = closed_form_step(agent, obs, actions, adv, obs)
    try:  # not vacuous: the whole batch's Fisher gives a step that is measurably another one
        assert_learner_takes(agent, obs, actions, adv, expected, whole_batch)
    finally:
        agent.close()


def test_fisher_subsample_is_validated():
    with pytest.raises(ConfigError, match="fisher_subsample"):
        keras_trpo.TRPOConfig().replace(fisher_subsample=0)

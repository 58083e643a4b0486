"""keras_trpo's learner against sb3-contrib's TRPO on batches sb3-contrib stored: an independent implementation.

``tests/data/sb3_contrib_trpo_*.npz`` are single training iterations of sb3-contrib's TRPO with the zoo's settings,
written by ``python -m benchmarks.sb3_update_parity dump`` under sb3-contrib's venv: the rollout its GAE read, the batch its
``train()`` read, its weights and critic Adam state before, its weights after, the minibatch order it drew. Swimmer-v5 (Box actions,
a diagonal Gaussian; VecNormalize's observations) at iteration 30 and CartPole-v1 (Discrete, categorical) at
iteration 1, both seed 0. No torch here: ``check`` copies the weights into keras_trpo's agent and runs
keras_trpo's ``Learner`` on the same batch.

The policy step is the same computation in float32 on both sides (surrogate gradient, CG on the damped Fisher,
the step to the trust region's edge, a line search that took its first try), so it must agree to float32
rounding. So must the critic's 20 epochs of Adam from sb3-contrib's Adam state, except in the first iterations:
the two Adams place epsilon differently (torch divides by sqrt(v_hat) + eps, Keras by sqrt(v) + eps with the bias
correction in the learning rate), which moves CartPole's first critic fit by 0.9 % (with epsilon 1e-12 on both
sides the two agree to 7e-6) and is gone by Swimmer's iteration 30 (4e-7).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.sb3_update_parity.check import check

DATA = Path(__file__).parent / "data"
# fixture -> (tolerance of the critic's step cosine, of its length ratio)
CASES = {
    "sb3_contrib_trpo_swimmer.npz": (1e-6, 1e-4),  # iteration 30: Adam's bias correction has faded
    "sb3_contrib_trpo_cartpole.npz": (1e-3, 0.02),  # iteration 1: Adam's epsilon placement, 0.9 % here
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request) -> tuple[str, dict]:
    return request.param, check(str(DATA / request.param))


def test_the_same_settings_and_the_same_network(case):
    _, result = case
    # sb3-contrib bounds the KL per action dimension; keras_trpo the whole action's (config.default_config)
    assert result["config"]["max_kl"] == pytest.approx(result["sb3_target_kl_times_d"])
    assert result["config"]["cg_damping"] == pytest.approx(result["sb3_cg_damping_times_d"])
    # the copied weights give sb3-contrib's acting log-probabilities and values
    assert result["logp_max_abs_diff"] < 1e-5
    assert result["value_max_abs_diff"] < 1e-5


def test_the_same_advantages(case):
    # keras_trpo's compute_gae (float64) on sb3-contrib's rewards, values and episode ends gives sb3-contrib's GAE
    # (float32: its rounding is relative to the returns' size, 4e-6 of 6.8 on Swimmer, whose advantages are 0.13)
    _, result = case
    assert result["gae_max_abs_diff"] < 1e-5 * result["return_scale"]


def test_the_policy_step_is_sb3_contribs(case):
    _, result = case
    assert result["gradient_cos"] == pytest.approx(1.0, abs=1e-6)
    assert result["gradient_norm_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert result["accepted_keras"] == result["accepted_sb3"] == 1.0
    assert result["step_cos"] == pytest.approx(1.0, abs=1e-6)
    assert result["step_norm_ratio"] == pytest.approx(1.0, abs=1e-4)
    # the step's length along sb3-contrib's CG direction: its full step beta, first try of the line search
    assert result["keras_step_over_direction"] == pytest.approx(result["sb3_beta_full"], rel=1e-4)
    assert result["kl_keras"] <= result["config"]["max_kl"]


def test_the_critic_fit_is_sb3_contribs(case):
    name, result = case
    cos_tol, ratio_tol = CASES[name]
    assert result["critic_step_cos"] == pytest.approx(1.0, abs=cos_tol)
    assert result["critic_step_norm_ratio"] == pytest.approx(1.0, abs=ratio_tol)

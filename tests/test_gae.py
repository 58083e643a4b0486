"""compute_gae against a plain per-env loop written independently here."""
import numpy as np
import pytest

from keras_trpo.gae import compute_gae


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    T, E = rewards.shape
    adv = np.zeros((T, E))
    for e in range(E):
        running = 0.0
        for t in reversed(range(T)):
            if terminated[t, e]:
                delta = rewards[t, e] - values[t, e]  # no value after a terminal state
                running = delta  # and nothing flows back across the episode end
            elif truncated[t, e]:
                delta = rewards[t, e] + gamma * next_values[t, e] - values[t, e]  # bootstrap from the final obs
                running = delta
            else:
                delta = rewards[t, e] + gamma * next_values[t, e] - values[t, e]
                running = delta + gamma * lam * running
            adv[t, e] = running
    return adv, adv + values


@pytest.mark.parametrize("T, E, gamma, lam, seed", [(1, 1, 0.99, 0.95, 0), (7, 3, 0.9, 1.0, 1), (64, 2, 0.99, 0.0, 2),
                                                    (200, 4, 0.995, 0.97, 3)])
def test_matches_plain_loop_with_terminations_and_truncations(T, E, gamma, lam, seed):
    rng = np.random.default_rng(seed)
    rewards, values, next_values = rng.normal(size=(3, T, E))
    terminated = rng.random((T, E)) < 0.1
    truncated = (rng.random((T, E)) < 0.1) & ~terminated
    adv, ret = compute_gae(rewards, values, next_values, terminated, terminated | truncated, gamma, lam)
    ref_adv, ref_ret = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)


def test_hand_computed_case():
    # one env, 3 steps; the episode is truncated at t=1, a new one runs at t=2.
    r = np.array([[1.0], [2.0], [3.0]])
    v = np.array([[0.5], [1.0], [2.0]])
    nv = np.array([[1.0], [4.0], [6.0]])  # t=1: value of the final observation of the truncated episode
    term = np.zeros((3, 1), bool)
    end = np.array([[False], [True], [False]])
    adv, _ = compute_gae(r, v, nv, term, end, gamma=0.5, lam=0.5)
    d2 = 3 + 0.5 * 6 - 2  # 4
    d1 = 2 + 0.5 * 4 - 1  # 3, and no carry from t=2
    d0 = 1 + 0.5 * 1 - 0.5  # 1
    np.testing.assert_allclose(adv[:, 0], [d0 + 0.25 * d1, d1, d2])


def test_termination_does_not_bootstrap():
    adv, _ = compute_gae(np.array([[1.0]]), np.array([[0.0]]), np.array([[100.0]]), np.array([[True]]),
                         np.array([[True]]), gamma=0.99, lam=0.95)
    assert adv[0, 0] == pytest.approx(1.0)

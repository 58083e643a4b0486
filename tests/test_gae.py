"""compute_gae against a plain per-env loop written independently here, and its wiring in the agent."""
import gymnasium as gym
import numpy as np
import pytest

import keras_trpo
from keras_trpo.rollouts.gae import compute_gae


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


@pytest.mark.parametrize("T, E, gamma, lam, seed", [(1, 1, 0.99, 0.95, 0), (2, 5, 0.5, 0.5, 4), (7, 3, 0.9, 1.0, 1),
                                                    (64, 2, 0.99, 0.0, 2), (200, 4, 0.995, 0.97, 3),
                                                    (50, 3, 1.0, 1.0, 5), (30, 2, 0.0, 0.9, 6)])
def test_matches_plain_loop_with_terminations_and_truncations(T, E, gamma, lam, seed):
    rng = np.random.default_rng(seed)
    rewards, values, next_values = rng.normal(size=(3, T, E))
    terminated = rng.random((T, E)) < 0.1
    truncated = (rng.random((T, E)) < 0.1) & ~terminated
    adv, ret = compute_gae(rewards, values, next_values, terminated, terminated | truncated, gamma, lam)
    ref_adv, ref_ret = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    assert adv.shape == ret.shape == (T, E)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)


def test_lambda_one_without_episode_ends_is_the_discounted_return_minus_value():
    rng = np.random.default_rng(7)
    T, gamma = 20, 0.9
    r, v = rng.normal(size=(T, 1)), rng.normal(size=(T, 1))
    bootstrap = 3.0
    nv = np.concatenate([v[1:], [[bootstrap]]])
    adv, ret = compute_gae(r, v, nv, np.zeros((T, 1), bool), np.zeros((T, 1), bool), gamma, 1.0)
    mc = [sum(gamma**k * r[t + k, 0] for k in range(T - t)) + gamma ** (T - t) * bootstrap for t in range(T)]
    np.testing.assert_allclose(ret[:, 0], mc, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv[:, 0], np.array(mc) - v[:, 0], rtol=1e-5, atol=1e-5)


def test_hand_computed_case():
    # one env, 3 steps; the episode is truncated at t=1, a new one runs at t=2.
    r = np.array([[1.0], [2.0], [3.0]])
    v = np.array([[0.5], [1.0], [2.0]])
    nv = np.array([[1.0], [4.0], [6.0]])  # t=1: value of the final observation of the truncated episode
    term = np.zeros((3, 1), bool)
    end = np.array([[False], [True], [False]])
    adv, ret = compute_gae(r, v, nv, term, end, gamma=0.5, lam=0.5)
    d2 = 3 + 0.5 * 6 - 2  # 4
    d1 = 2 + 0.5 * 4 - 1  # 3, and no carry from t=2
    d0 = 1 + 0.5 * 1 - 0.5  # 1
    np.testing.assert_allclose(adv[:, 0], [d0 + 0.25 * d1, d1, d2])
    np.testing.assert_allclose(ret[:, 0], [d0 + 0.25 * d1 + 0.5, d1 + 1.0, d2 + 2.0])


def test_hand_computed_termination_in_two_envs():
    # env 0 terminates at t=0 (no bootstrap, no carry), env 1 runs on; gamma=1, lambda=1.
    r = np.array([[1.0, 1.0], [1.0, 1.0]])
    v = np.array([[10.0, 0.0], [0.0, 0.0]])
    nv = np.array([[100.0, 0.0], [5.0, 5.0]])
    term = np.array([[True, False], [False, False]])
    adv, _ = compute_gae(r, v, nv, term, term, gamma=1.0, lam=1.0)
    np.testing.assert_allclose(adv, [[1 - 10, 1 + 0 - 0 + (1 + 5)], [1 + 5, 1 + 5]])


def test_termination_does_not_bootstrap():
    adv, _ = compute_gae(np.array([[1.0]]), np.array([[0.0]]), np.array([[100.0]]), np.array([[True]]),
                         np.array([[True]]), gamma=0.99, lam=0.95)
    assert adv[0, 0] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- wiring in the agent
class CounterEnv(gym.Env):
    """Observation [t / 10, episode parity, 1]: every observation, including the final one of an
    episode, is known in advance. Even episodes are truncated after 5 steps, odd ones terminate after 3."""

    observation_space = gym.spaces.Box(-1, 2, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode = getattr(self, "episode", -1) + 1
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t / 10, self.episode % 2, 1.0], np.float32)

    def step(self, action):
        self.t += 1
        odd = self.episode % 2 == 1
        terminated = odd and self.t == 3
        truncated = not odd and self.t == 5
        return self._obs(), 1.0 + 0.1 * self.t + 0.5 * int(action), terminated, truncated, {}


def test_agent_bootstraps_from_the_final_observation_on_truncation_only():
    """The advantages the agent hands to the policy update equal the reference GAE computed from
    V of the observations this env is known to produce (final observations included)."""
    T, E, gamma, lam = 16, 2, 0.9, 0.8
    agent = keras_trpo.TRPO(CounterEnv, seed=0, n_envs=E, n_steps=T, gamma=gamma, gae_lambda=lam,
                            normalize_advantage=False, jit_compile=False)
    rollout = agent._collect(T)
    captured = {}
    update = agent.learner.policy_update

    def spy(obs, actions, advantages, *masks):  # masks: None for an unmasked agent
        captured["adv"] = np.array(advantages)
        return update(obs, actions, advantages, *masks)

    agent.learner.policy_update = spy
    V = lambda o: agent.policy.values(np.asarray(o, np.float32).reshape(-1, 3)).astype(np.float64)  # noqa: E731
    # Independently replay what each env did: (episode, t) per step from the env's own schedule.
    values, next_values = np.zeros((T, E)), np.zeros((T, E))
    terminated, truncated, rewards = np.zeros((T, E), bool), np.zeros((T, E), bool), np.zeros((T, E))
    actions = rollout.actions
    for e in range(E):
        episode, t = 0, 0
        for step in range(T):
            obs = [t / 10, episode % 2, 1.0]
            np.testing.assert_allclose(rollout.obs[step, e], obs, atol=1e-7)
            values[step, e] = V(obs)[0]
            t += 1
            rewards[step, e] = 1.0 + 0.1 * t + 0.5 * int(actions[step, e])
            length = 3 if episode % 2 else 5
            next_values[step, e] = V([t / 10, episode % 2, 1.0])[0]  # the real next state, final obs included
            if t == length:
                terminated[step, e], truncated[step, e] = episode % 2 == 1, episode % 2 == 0
                episode, t = episode + 1, 0
    assert terminated.any() and truncated.any()
    np.testing.assert_array_equal(rollout.terminated, terminated)
    np.testing.assert_array_equal(rollout.episode_end, terminated | truncated)
    np.testing.assert_allclose(rollout.rewards, rewards, rtol=1e-6)
    agent._learn(rollout)
    expected, _ = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(captured["adv"].reshape(T, E), expected, rtol=1e-4, atol=1e-4)

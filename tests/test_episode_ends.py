"""benchmarks.episode_ends: the reason an episode ended is read from the simulator's own state."""
import numpy as np

import gymnasium as gym

from benchmarks.episode_ends import episode_ends

CARTPOLE = gym.make("CartPole-v1").unwrapped
X_LIMIT, THETA_LIMIT = CARTPOLE.x_threshold, CARTPOLE.theta_threshold_radians


class Constant:
    """Always the same action; records the state and starts it is given."""

    def __init__(self, action):
        self.action, self.starts = action, []

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        if episode_start is None:  # feed-forward: an action only, as FeedForwardPolicy.predict returns
            return self.action
        self.starts.append(bool(episode_start[0]))
        return self.action, state


def test_pushing_one_way_drops_the_pole_and_each_episode_starts_once():
    agent = Constant(1)
    rows = episode_ends(agent, "CartPoleNoVel-v1", episodes=3)
    assert [r["episode"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["reason"] == "pole down" and abs(r["theta"]) > THETA_LIMIT and abs(r["x"]) <= X_LIMIT
        assert 5 <= r["length"] < 50
    assert sum(agent.starts) == 3 and len(agent.starts) == sum(r["length"] for r in rows)


def test_the_episodes_are_the_evaluation_seeds():
    a = episode_ends(Constant(0), "CartPole-v1", episodes=2, recurrent=False)
    b = episode_ends(Constant(0), "CartPole-v1", episodes=2, recurrent=False)
    assert a == b and not np.isclose(a[0]["theta"], a[1]["theta"])

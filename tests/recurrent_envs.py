"""Envs for the recurrent-policy tests (module level, so worker processes can import them)."""
import gymnasium as gym
import numpy as np


class RepeatBitEnv(gym.Env):
    """Remember one bit for ``delay`` steps.

    Step 0 shows a random bit b as ``[2b - 1, 1]``; the ``delay`` steps after it show ``[0, 0]``.
    The episode ends after the action at step ``delay``, which earns 1 if it equals b and 0
    otherwise (no other step is rewarded). A feed-forward policy sees the same observation at
    the rewarded step whatever b was, so its expected return is at most 0.5; a policy that
    remembers the bit gets 1.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, delay: int = 3):
        self.delay = int(delay)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.bit, self.t = int(self.np_random.integers(2)), 0
        return np.array([2.0 * self.bit - 1.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t > self.delay
        reward = float(int(action) == self.bit) if done else 0.0
        return np.zeros(2, np.float32), reward, done, False, {}


class EpisodeCounterEnv(gym.Env):
    """obs = [1 at the first step of an episode else 0, 1]; episodes of exactly ``length`` steps
    (terminated), so the tests know where every episode boundary falls."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 5):
        self.length = int(length)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([1.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([0.0, 1.0], np.float32), 1.0, self.t >= self.length, False, {}

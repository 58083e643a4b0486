"""Small envs for tests: any observation/action space, NaN on demand, image observations."""
import gymnasium as gym
import numpy as np


# The observation space and one action space per family that the export tests build toy agents on.
EXPORT_OBS = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
EXPORT_ACTION_SPACES = {
    "discrete": gym.spaces.Discrete(4, start=2),
    "box": gym.spaces.Box(np.array([-1, -2, 0], np.float32), np.array([1, 2, 0.5], np.float32)),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 2, 5]),
    "multibinary": gym.spaces.MultiBinary(4),
}


class ToyEnv(gym.Env):
    """Observations sampled from ``observation_space``; reward favours action 0 / small actions."""

    def __init__(self, observation_space=None, action_space=None, episode_length=16, nan_at=None):
        self.observation_space = observation_space or gym.spaces.Box(-1, 1, (3,), np.float32)
        self.action_space = action_space or gym.spaces.Discrete(2)
        self.episode_length, self.nan_at, self._t, self._total = episode_length, nan_at, 0, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(1 << 31)))
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        self._total += 1
        obs = self.observation_space.sample()
        if self.nan_at is not None and self._total >= self.nan_at:
            obs = np.full_like(obs, np.nan, dtype=np.float32)
        reward = -float(np.sum(np.abs(np.asarray(action, np.float64))))
        return obs, reward, False, self._t >= self.episode_length, {}

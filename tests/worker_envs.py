"""Envs for the rollout-backend tests: deterministic, and ones that stall, crash or raise.

They are module-level classes so worker processes and Ray actors can import them.
"""
import os
import time

import gymnasium as gym
import numpy as np


class CountingEnv(gym.Env):
    """Fully deterministic: obs = [t in episode, episode parity, 1]. Even episodes are truncated
    after 11 steps, odd ones terminate after 7, so a trajectory can be checked step by step."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.reset_seed = seed
        self.episode = getattr(self, "episode", -1) + 1
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t, self.episode % 2, 1.0], np.float32)

    def step(self, action):
        self.t += 1
        odd = self.episode % 2 == 1
        terminated, truncated = odd and self.t == 7, (not odd) and self.t == 11
        return self._obs(), 1.0 + 0.5 * int(action), terminated, truncated, {}


class StallOnceEnv(CountingEnv):
    """The first env (in any worker) to reach step ``at`` writes "pid env_index" to ``marker``
    and stalls, so the test can SIGKILL that worker in the middle of its fragment. Later
    lives find the marker and never stall."""

    def __init__(self, marker: str, at: int = 20, base_seed: int = 0):
        self.marker, self.at, self.base_seed, self.steps = marker, at, base_seed, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.at:
            try:  # the lock is never removed: only one env, once, ever stalls
                os.close(os.open(self.marker + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                with open(self.marker + ".tmp", "w") as f:
                    f.write(f"{os.getpid()} {self.reset_seed - self.base_seed}")
                os.rename(self.marker + ".tmp", self.marker)  # the test reads it whole or not at all
                time.sleep(120)  # killed long before this ends
        return super().step(action)


class RaisingEnv(CountingEnv):
    def __init__(self, at: int = 5, message: str = "sensor 3 disconnected"):
        self.at, self.message, self.steps = at, message, 0

    def step(self, action):
        self.steps += 1
        if self.steps >= self.at:
            raise ValueError(self.message)
        return super().step(action)


class SlowEnv(CountingEnv):
    def __init__(self, delay: float = 5.0):
        self.delay = delay

    def step(self, action):
        time.sleep(self.delay)
        return super().step(action)

"""Goal-conditioned test tasks with Dict observations (module-level, so worker processes can import them)."""
import gymnasium as gym
import numpy as np

# The four targets of the Discrete-goal variant: desired_goal = i means "go to CORNERS[i]".
CORNERS = np.array([[-0.6, -0.6], [-0.6, 0.6], [0.6, -0.6], [0.6, 0.6]])


class PointGoalEnv(gym.Env):
    """A point in the plane that must move to a goal it is told in its observation dict.

    Observation (the goal-conditioned layout):
      ``observation``: ``[x, y, vx, vy]``, position and last velocity;
      ``achieved_goal``: ``[x, y]``;
      ``desired_goal``: the goal ``[gx, gy]`` (uniform in [-1, 1]^2), or with ``discrete_goal=True``
      the index of one of ``CORNERS`` (a ``Discrete(4)`` entry).
    Action: a velocity in ``[-1, 1]^2``; the point moves ``0.2 * action`` per step.
    Reward: minus the distance to the goal after the move. Episodes are truncated after ``horizon`` steps.

    Without the goal a policy can do no better than stay near the centre; with it the point
    reaches the goal in at most ~6 steps (about -4 per episode, against about -21 standing still).
    """

    def __init__(self, horizon: int = 20, discrete_goal: bool = False):
        self.horizon, self.discrete_goal = horizon, discrete_goal
        goal_space = gym.spaces.Discrete(4) if discrete_goal else gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        # Deliberately not in sorted order: the models concatenate in sorted-key order whatever the env does.
        self.observation_space = gym.spaces.Dict({
            "observation": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
            "desired_goal": goal_space,
            "achieved_goal": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        })
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def _obs(self) -> dict:
        goal = self.goal_index if self.discrete_goal else self.goal.astype(np.float32)
        return {"observation": np.concatenate([self.pos, self.vel]).astype(np.float32),
                "achieved_goal": self.pos.astype(np.float32), "desired_goal": goal}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1.0, 1.0, 2)
        self.vel = np.zeros(2)
        if self.discrete_goal:
            self.goal_index = int(self.np_random.integers(4))
            self.goal = CORNERS[self.goal_index]
        else:
            self.goal = self.np_random.uniform(-1.0, 1.0, 2)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.vel = 0.2 * np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self.pos = np.clip(self.pos + self.vel, -2.0, 2.0)
        self.t += 1
        reward = -float(np.linalg.norm(self.pos - self.goal))
        return self._obs(), reward, False, self.t >= self.horizon, {}


class DictCountingEnv(gym.Env):
    """Deterministic Dict observations for closed-form checks: at step ``t`` of an episode
    ``{"b": [t, 2t + 1], "a": t % 3 (Discrete(3)), "c": [10 - t]}``; truncated after 5 steps."""

    def __init__(self):
        self.observation_space = gym.spaces.Dict({
            "b": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
            "a": gym.spaces.Discrete(3),
            "c": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
        })
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self) -> dict:
        t = self.t
        return {"b": np.array([t, 2 * t + 1], np.float32), "a": t % 3, "c": np.array([10 - t], np.float32)}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), False, self.t >= 5, {}

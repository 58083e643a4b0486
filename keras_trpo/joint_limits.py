"""A masked MultiDiscrete task: drive a three-joint arm to a target with per-episode joint limits.

The robot-arm case of action masking. Each joint sits on a lattice of positions ``0 .. 8`` and
takes one of three commands per step, ``0`` = move down, ``1`` = hold, ``2`` = move up
(``MultiDiscrete([3, 3, 3])``). Every episode draws new joint limits ``lo <= hi`` per joint, the start
and the target inside them. The limits are not in the observation; the controller knows them and says
which commands are valid through ``action_masks()`` (sb3-contrib's convention): a joint at its lower
limit cannot move down, at its upper limit cannot move up, and holding is always valid, so no
sub-space is ever empty. A command the mask forbids is refused: that joint stays where it is and the
step costs ``INVALID_PENALTY`` (what a safety controller's refusal costs a policy that ignores masks).

- ``JointLimits-v0``: observation ``[position / 8 (3), target / 8 (3)]``, float32.
- ``JointLimitsMemory-v0``: the target is shown in the first observation of an episode only, zeros
  after it, with a seventh entry that is 1 on that first step: a policy must remember the target (a
  recurrent one can), a partially observable masked task.
- ``JointLimitsFlicker-v0``: the target is shown on the first step and then on each step with
  probability ``FLICKER`` (the seventh entry says when), zeros otherwise: a flickering observation
  (Hausknecht and Stone's flickering Atari). A feed-forward policy can only move when it sees the target;
  one that remembers the last target it saw can move on every step.

Reward ``-0.05`` per step, ``-INVALID_PENALTY`` more per refused command, ``+1`` on reaching the target
(the episode terminates); episodes are truncated after 60 steps. ``gym.make(..., shaping=True)`` adds
``SHAPING`` times the step's decrease of the L1 distance to the target, a potential-based term (the
best policy is unchanged) that tells a policy at every step whether it moved the right way. NumPy and gymnasium only (no
TensorFlow), registered on import like ``keras_trpo.pomdp``, so sb3-contrib's side of the benchmarks
can make the same envs.
"""
from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import numpy as np

N_JOINTS, N_POSITIONS = 3, 9
INVALID_PENALTY = 0.5
STEP_COST, GOAL_REWARD, MAX_STEPS = 0.05, 1.0, 60
SHAPING = 0.1
FLICKER = 0.2


class JointLimitsEnv(gym.Env):
    """See the module docstring. ``memory=True`` hides the target after the first observation, except
    on steps drawn with probability ``flicker``; ``shaping=True`` adds the potential-based distance term."""

    metadata = {"render_modes": []}

    def __init__(self, memory: bool = False, shaping: bool = False, flicker: float = 0.0):
        if not 0.0 <= float(flicker) <= 1.0:
            raise ValueError(f"flicker must be a probability in [0, 1], got {flicker!r}")
        if flicker and not memory:  # the target is always shown without memory=True: flicker would do nothing
            raise ValueError("flicker needs memory=True (without it the target is shown on every step)")
        self.memory, self.shaping, self.flicker = bool(memory), bool(shaping), float(flicker)
        self.shown = True
        width = 2 * N_JOINTS + (1 if self.memory else 0)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (width,), np.float32)
        self.action_space = gym.spaces.MultiDiscrete([3] * N_JOINTS)
        self.lo = self.hi = self.pos = self.target = np.zeros(N_JOINTS, np.int64)
        self.t = 0

    def action_masks(self) -> np.ndarray:
        """bool ``[3 * N_JOINTS]``: per joint ``[may move down, may hold, may move up]``."""
        return np.stack([self.pos > self.lo, np.ones(N_JOINTS, bool), self.pos < self.hi], axis=1).reshape(-1)

    def _obs(self) -> np.ndarray:
        scale = N_POSITIONS - 1
        target = self.target / scale if (self.shown or not self.memory) else np.zeros(N_JOINTS)
        parts = [self.pos / scale, target] + ([[1.0 if self.shown else 0.0]] if self.memory else [])
        return np.concatenate(parts).astype(np.float32)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None):
        super().reset(seed=seed)
        rng = self.np_random
        a, b = rng.integers(0, N_POSITIONS, N_JOINTS), rng.integers(0, N_POSITIONS, N_JOINTS)
        self.lo, self.hi = np.minimum(a, b), np.maximum(a, b)
        self.hi = np.maximum(self.hi, np.minimum(self.lo + 2, N_POSITIONS - 1))  # at least two positions
        self.lo = np.minimum(self.lo, self.hi - 2)
        self.pos = rng.integers(self.lo, self.hi + 1)
        self.target = rng.integers(self.lo, self.hi + 1)
        while np.array_equal(self.pos, self.target):
            self.target = rng.integers(self.lo, self.hi + 1)
        self.t, self.shown = 0, True
        return self._obs(), {"action_mask": self.action_masks()}

    def step(self, action):
        action = np.asarray(action, np.int64).reshape(N_JOINTS)
        if not self.action_space.contains(action):
            raise ValueError(f"action {action.tolist()} is not in {self.action_space}")
        valid = self.action_masks().reshape(N_JOINTS, 3)[np.arange(N_JOINTS), action]
        before = int(np.abs(self.target - self.pos).sum())
        self.pos = np.where(valid, self.pos + action - 1, self.pos)
        self.t += 1
        # drawn only when flickering, so JointLimitsMemory-v0's episodes are the same as before
        self.shown = bool(self.flicker > 0 and self.np_random.random() < self.flicker)
        refused = int(N_JOINTS - valid.sum())
        reached = bool(np.array_equal(self.pos, self.target))
        reward = -STEP_COST - INVALID_PENALTY * refused + (GOAL_REWARD if reached else 0.0)
        if self.shaping:
            reward += SHAPING * (before - int(np.abs(self.target - self.pos).sum()))
        info = {"action_mask": self.action_masks(), "invalid_actions": refused}
        return self._obs(), float(reward), reached, self.t >= MAX_STEPS and not reached, info


ENVS = {"JointLimits-v0": dict(memory=False), "JointLimitsMemory-v0": dict(memory=True),
        "JointLimitsFlicker-v0": dict(memory=True, flicker=FLICKER)}


def register_envs() -> None:
    """Register the ids with gymnasium (once; again is a no-op)."""
    for env_id, kwargs in ENVS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=JointLimitsEnv, kwargs=kwargs)


register_envs()

"""Envs that give action masks, for tests: every action family, both conventions, Dict observations,
and masks that go wrong on demand."""
import gymnasium as gym
import numpy as np

SPACES = {
    "discrete": gym.spaces.Discrete(5),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 2, 4]),
    "multibinary": gym.spaces.MultiBinary(3),
}


def mask_of(space: gym.Space, key: int) -> np.ndarray:
    """A mask for ``space`` that is a function of the integer ``key`` alone, never empty: about half the
    entries valid; for MultiBinary some bits forced (one of the pair invalid), none with neither."""
    rng = np.random.default_rng(int(key) + 1000)
    if isinstance(space, gym.spaces.Discrete):
        m = rng.random(space.n) < 0.5
        m[rng.integers(space.n)] = True
        return m
    if isinstance(space, gym.spaces.MultiDiscrete):
        parts = []
        for n in space.nvec:
            m = rng.random(int(n)) < 0.5
            m[rng.integers(n)] = True
            parts.append(m)
        return np.concatenate(parts)
    bits = int(np.prod(space.shape))
    pairs = np.ones((bits, 2), bool)
    forced = rng.random(bits) < 0.5
    pairs[forced, rng.integers(0, 2, bits)[forced]] = False
    return pairs.reshape(-1)


class MaskedEnv(gym.Env):
    """Observation ``[t / 10, episode / 10, key / 100]`` (or a Dict of them) whose mask is ``mask_of(space,
    key)`` with ``key = 37 * episode + t``, so a test can recompute each stored mask from its observation.
    Rewards favour the action's first entry being 0 (a valid choice in about half the states).

    ``via``: "method" (``action_masks()``), "info" (``info["action_mask"]``) or "both" (the method's mask
    differs from the info's, which is all False: the method must win). ``bad``: at the env's
    ``bad_at``-th step, "shape" gives a mask of the wrong length, "empty" one with nothing valid, "none"
    no mask; with ``bad_seed`` only the env first reset with that seed goes wrong. Episodes last ``length``
    steps (truncated).
    """

    def __init__(self, kind="discrete", via="method", length=7, dict_obs=False, bad=None, bad_at=5, bad_seed=None,
                 seed_offset=0):
        self.action_space = SPACES[kind]
        box = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.observation_space = (gym.spaces.Dict({"a": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
                                                   "b": gym.spaces.Discrete(4)}) if dict_obs else box)
        self.via, self.length, self.dict_obs, self.bad, self.bad_at = via, length, dict_obs, bad, bad_at
        self.episode, self.t, self.steps, self.seed_offset = -1, 0, 0, seed_offset
        self.bad_seed, self.first_seed = bad_seed, None

    @property
    def key(self) -> int:
        return 37 * self.episode + self.t

    def _obs(self):
        x = np.array([self.t / 10, self.episode / 10, self.key / 100], np.float32)
        if self.dict_obs:
            return {"a": x[:2], "b": self.key % 4}
        return x

    def _mask(self):
        m = mask_of(self.action_space, self.key)
        if self.bad is not None and self.steps == self.bad_at and self.bad_seed in (None, self.first_seed):
            if self.bad == "shape":
                return m[:-1]
            if self.bad == "empty":
                return np.zeros_like(m)
            if self.bad == "none":
                return None
        return m

    def action_masks(self):
        return self._mask()

    def _info(self):
        if self.via == "method":
            return {}
        if self.via == "both":
            return {"action_mask": np.zeros_like(mask_of(self.action_space, 0))}
        m = self._mask()
        return {} if m is None else {"action_mask": m.astype(np.int8)}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.first_seed = int(seed) if self.first_seed is None else self.first_seed
            self.episode = int(seed) * 1000 + self.seed_offset
        self.episode += 1
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        first = np.asarray(action).reshape(-1)[0]
        self.t += 1
        self.steps += 1
        return self._obs(), float(first == 0), False, self.t >= self.length, self._info()


class InfoMaskedEnv(MaskedEnv):
    """``MaskedEnv`` without the ``action_masks`` method: masks through ``info`` only."""

    action_masks = None

    def __init__(self, **kwargs):
        super().__init__(via="info", **kwargs)

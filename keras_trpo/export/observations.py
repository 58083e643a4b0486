"""What an exported file is verified on: observations for a feed-forward policy, ``Episodes`` for a
recurrent one, sampled from the observation space and visited by the agent in its env. No TensorFlow.

Observations travel packed (``[N, *obs_shape]``, a Dict space's ``[N, width]``, as rollouts store
them); ``PolicyDescription.feeds`` turns them into the graph's inputs by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import gymnasium as gym
import numpy as np

from keras_trpo.export.description import PolicyDescription
from keras_trpo.export.inputs import OBS

N_SAMPLED, N_ROLLOUT = 1000, 1000  # a feed-forward policy: observations sampled from the space, then visited
EPISODES = 10  # a recurrent policy is verified over this many episodes of its env
SAMPLED_LANES, SAMPLED_STEPS, SAMPLED_START_RATE = 8, 64, 0.1  # without an env: random sequences
MAX_EPISODE_STEPS = 1000  # an episode longer than this is cut (its steps are still compared)
EXPLORE = 0.3  # rollouts act randomly this often, to visit states off the greedy path too


@dataclass
class Episodes:
    """``steps`` steps of ``lanes`` sequences side by side, as a vector env's rollout.

    ``observations [T, L, *obs_shape]`` float32 (a Dict's packed form); ``starts [T, L]`` bool,
    True at step 0 of every lane and wherever an episode begins (the state is zeros there).
    """

    observations: np.ndarray
    starts: np.ndarray

    def __post_init__(self):
        self.starts = np.asarray(self.starts, bool).copy()
        self.starts[0] = True  # every lane begins an episode
        self.observations = np.asarray(self.observations, np.float32)

    @property
    def steps(self) -> int:
        return int(self.starts.shape[0])

    @property
    def lanes(self) -> int:
        return int(self.starts.shape[1])

    @property
    def count(self) -> int:
        """The number of episodes (whole or cut at the end of a lane)."""
        return int(self.starts.sum())

    def label(self, t: int, lane: int) -> str:
        """``"episode 3, step 7"`` for step ``t`` of ``lane`` (episodes numbered lane by lane from 0)."""
        before = int(self.starts[:, :lane].sum())
        episode = before + int(self.starts[: t + 1, lane].sum()) - 1
        first = int(np.flatnonzero(self.starts[: t + 1, lane])[-1])
        return f"episode {episode}, step {t - first}"


Inputs = Union[np.ndarray, Episodes]  # what a file is verified on


def sample_observations(desc: PolicyDescription, n: int, seed: int = 0) -> np.ndarray:
    """``[n, *obs_shape]`` float32 drawn from the observation space (a Dict space's packed ``[n, width]``).

    Unbounded Box dimensions are drawn around the normaliser's statistics (N(0, 1) without
    training), so they look like real inputs.
    """
    rng = np.random.default_rng(seed)
    space = desc.observation_space
    if desc.layout is None:
        return _sample_space(space, *desc.observation_stats[OBS], n, rng)
    out = np.empty((n, desc.layout.width), np.float32)
    for e in desc.layout.entries:
        if e.kind == "discrete":
            out[:, e.start] = rng.integers(0, e.n, size=n)
        else:
            out[:, e.start:e.stop] = _sample_space(space[e.key], *desc.observation_stats[e.key], n, rng)
    return out


def _sample_space(space: gym.Space, mean: np.ndarray, var: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=n).astype(np.float32)
    shape = tuple(space.shape)
    low = np.broadcast_to(np.asarray(space.low, np.float64), shape)
    high = np.broadcast_to(np.asarray(space.high, np.float64), shape)
    center = np.asarray(mean, np.float64).reshape(shape)
    scale = 2.0 * np.sqrt(np.asarray(var, np.float64)).reshape(shape)
    gauss = center + scale * rng.standard_normal((n,) + shape)
    bounded = np.isfinite(low) & np.isfinite(high)
    uniform = rng.uniform(np.where(bounded, low, 0), np.where(bounded, high, 1), size=(n,) + shape)
    obs = np.where(bounded, uniform, np.clip(gauss, low, high))
    return obs.astype(np.float32)


def packed(desc: PolicyDescription, observations: list) -> np.ndarray:
    """Observations as an env returns them, one per env -> ``[n, *obs_shape]`` float32 (a Dict's packed form)."""
    if desc.layout is not None:
        return desc.layout.pack(observations, len(observations))
    return np.asarray(observations, np.float32).reshape((-1,) + desc.obs_shape)


def _make_env(desc: PolicyDescription) -> gym.Env:
    return gym.make(desc.env_id, **desc.env_kwargs)


def rollout_observations(desc: PolicyDescription, n: int, seed: int = 0, explore: float = EXPLORE) -> np.ndarray:
    """Up to ``n`` observations visited by the agent in its env (empty if it has no env id).

    Acts greedily with probability ``1 - explore`` and randomly otherwise.
    """
    if not desc.env_id:
        return np.empty((0,) + desc.obs_shape, np.float32)
    env = _make_env(desc)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    out = []
    try:
        obs, _ = env.reset(seed=seed)
        while len(out) < n:
            out.append(obs)
            action = env.action_space.sample() if rng.random() < explore else desc.predict(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return packed(desc, out)


def verification_observations(desc: PolicyDescription, n_sampled: int = N_SAMPLED, n_rollout: int = N_ROLLOUT,
                              seed: int = 0) -> np.ndarray:
    """``n_sampled`` observations sampled from the space, then up to ``n_rollout`` visited in the env."""
    return np.concatenate([sample_observations(desc, n_sampled, seed), rollout_observations(desc, n_rollout, seed)])


def default_calibration(desc: PolicyDescription, n: int = 1000, seed: int = 1) -> np.ndarray:
    """Observations to calibrate static quantisation on: ``n`` visited by the agent in its env
    (seed 1, not the verification's 0), or sampled from the space if it has no env id."""
    obs = rollout_observations(desc, n, seed)
    return obs if len(obs) else sample_observations(desc, n, seed)


def sample_episodes(desc: PolicyDescription, lanes: int = SAMPLED_LANES, steps: int = SAMPLED_STEPS, seed: int = 0,
                    start_rate: float = SAMPLED_START_RATE) -> Episodes:
    """Observations sampled from the space (``sample_observations``), with episode starts at random."""
    obs = sample_observations(desc, lanes * steps, seed).reshape((steps, lanes) + desc.obs_shape)
    return Episodes(obs, np.random.default_rng(seed + 1).random((steps, lanes)) < start_rate)


def rollout_episodes(desc: PolicyDescription, episodes: int = EPISODES, seed: int = 0, explore: float = EXPLORE,
                     max_steps: int = MAX_EPISODE_STEPS) -> Episodes:
    """``episodes`` episodes of the agent's env side by side (env i reset with ``seed + i``), each
    lane stepped until every lane has finished its first episode (a lane that finishes early begins
    another, which is compared too). Acts with the agent's ``predict`` carrying its state, randomly
    with probability ``explore``."""
    envs = [_make_env(desc) for _ in range(episodes)]
    rng = np.random.default_rng(seed)
    try:
        for i, env in enumerate(envs):
            env.action_space.seed(seed + i)
        obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
        finished = np.zeros(episodes, bool)
        starts, steps = np.ones(episodes, bool), []
        state = None
        while not finished.all() and len(steps) < max_steps:
            batch = packed(desc, obs)
            steps.append((batch, starts.copy()))
            actions, state = desc.predict(_user_batch(desc, obs), state, starts)
            starts[:] = False
            for i, env in enumerate(envs):
                action = env.action_space.sample() if rng.random() < explore else actions[i]
                obs[i], _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    finished[i], starts[i] = True, True
                    obs[i], _ = env.reset()
    finally:
        for env in envs:
            env.close()
    return Episodes(np.stack([b for b, _ in steps]), np.stack([s for _, s in steps]))


def _user_batch(desc: PolicyDescription, obs: list):
    """One observation per env -> the batch the agent's ``predict`` takes (a dict of arrays for a Dict space)."""
    if desc.layout is None:
        return np.asarray(obs, np.float32)
    return {k: np.stack([np.asarray(o[k]) for o in obs]) for k in desc.layout.keys}


def verification_episodes(desc: PolicyDescription, seed: int = 0) -> Episodes:
    """``EPISODES`` episodes of the agent's env, or without an env id sequences sampled from the space."""
    return rollout_episodes(desc, seed=seed) if desc.env_id else sample_episodes(desc, seed=seed)


def default_inputs(desc: PolicyDescription) -> Inputs:
    """What a file is verified on by default: ``verification_episodes`` for a recurrent policy,
    else ``verification_observations``."""
    return verification_episodes(desc) if desc.is_recurrent else verification_observations(desc)

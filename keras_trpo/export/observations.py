"""What an exported file is verified on: observations for a feed-forward policy, ``Episodes`` for a
recurrent one, sampled from the observation space and visited by the agent in its env. No TensorFlow.

Observations travel packed (``[N, *obs_shape]``, a Dict space's ``[N, width]``, as rollouts store
them); ``PolicyDescription.feeds`` turns them into the graph's inputs by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import gymnasium as gym
import numpy as np

from keras_trpo.export.description import PolicyDescription
from keras_trpo.export.inputs import OBS
from keras_trpo_serving.action_masks import MaskSource

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
    masks: Optional[np.ndarray] = None  # a masked policy: bool [T, L, W], each step's action mask (True = valid)

    def __post_init__(self):
        self.starts = np.asarray(self.starts, bool).copy()
        self.starts[0] = True  # every lane begins an episode
        self.observations = np.asarray(self.observations, np.float32)
        if self.masks is not None:
            self.masks = np.asarray(self.masks, bool)

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


@dataclass
class MaskedObservations:
    """A masked feed-forward policy's verification inputs: observations ``[N, *obs_shape]`` float32
    (a Dict's packed form) and the action mask each is verified under, bool ``[N, W]`` (True =
    valid). ``episodes``: how many whole env episodes (under the env's own masks) they include."""

    observations: np.ndarray
    masks: np.ndarray
    episodes: int = 0

    def __post_init__(self):
        self.observations = np.asarray(self.observations, np.float32)
        self.masks = np.asarray(self.masks, bool)
        if len(self.masks) != len(self.observations):
            raise ValueError(f"{len(self.observations)} observations but {len(self.masks)} masks")

    def __len__(self) -> int:
        return len(self.observations)

    def __getitem__(self, rows) -> "MaskedObservations":
        return MaskedObservations(self.observations[rows], self.masks[rows])


Inputs = Union[np.ndarray, MaskedObservations, Episodes]  # what a file is verified on


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
    with probability ``explore``.

    A masked policy's episodes also hold each step's mask as the env gives it
    (keras_trpo_serving.action_masks.MaskSource; all valid where it gives none): the agent acts under
    it, and a random action is drawn among the valid ones."""
    envs = [_make_env(desc) for _ in range(episodes)]
    sources = [MaskSource(env) for env in envs] if desc.masked else None
    rng = np.random.default_rng(seed)
    try:
        for i, env in enumerate(envs):
            env.action_space.seed(seed + i)
        obs, infos = (list(x) for x in zip(*[env.reset(seed=seed + i) for i, env in enumerate(envs)]))
        finished = np.zeros(episodes, bool)
        starts, steps, masks = np.ones(episodes, bool), [], []
        state = None
        while not finished.all() and len(steps) < max_steps:
            batch = packed(desc, obs)
            steps.append((batch, starts.copy()))
            if sources is None:
                actions, state = desc.predict(_user_batch(desc, obs), state, starts)
            else:
                masks.append(np.concatenate([env_mask(desc, s, info) for s, info in zip(sources, infos)]))
                actions, state = _masked_predict(desc, _user_batch(desc, obs), state, starts, masks[-1])
            starts[:] = False
            for i, env in enumerate(envs):
                if rng.random() >= explore:
                    action = actions[i]
                elif sources is None:
                    action = env.action_space.sample()
                else:
                    action = random_valid_action(desc, masks[-1][i:i + 1], rng)[0]
                obs[i], _, terminated, truncated, infos[i] = env.step(action)
                if terminated or truncated:
                    finished[i], starts[i] = True, True
                    obs[i], infos[i] = env.reset()
    finally:
        for env in envs:
            env.close()
    return Episodes(np.stack([b for b, _ in steps]), np.stack([s for _, s in steps]),
                    np.stack(masks) if masks else None)


def env_mask(desc: PolicyDescription, source: MaskSource, info) -> np.ndarray:
    """The env's current mask as bool ``[1, W]`` (checked by the rule: ``InvalidActionMask`` names a
    bad one), all valid if the env gives none."""
    mask = source(info)
    return desc.rule.all_valid(1) if mask is None else desc.rule.check_mask(mask, 1)


def _masked_predict(desc: PolicyDescription, batch, state, starts: np.ndarray, mask: np.ndarray):
    """The agent's actions for a batch under ``mask`` (passed if the agent acts with masks), and its state."""
    kwargs = {"action_masks": mask} if desc.agent_masked else {}
    if desc.is_recurrent:
        return desc.predict(batch, state, starts, **kwargs)
    return desc.predict(batch, **kwargs), None  # a feed-forward agent takes no state


def random_valid_action(desc: PolicyDescription, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Env actions ``[B, ...]`` drawn uniformly among those ``mask`` (bool ``[B, W]``) allows: the rule's
    sample for all-zero logits under the mask."""
    rule = desc.rule
    zeros = {"logits": np.zeros((len(mask), rule.noise_width), np.float32)}
    return rule.agent_action(zeros, rng.random((len(mask), rule.noise_width)), mask)


def random_masks(desc: PolicyDescription, rows: int, seed: int = 0) -> np.ndarray:
    """Valid masks bool ``[rows, W]`` at random for the policy's rule: each entry valid with probability
    1/2, then one entry made valid in each row (Discrete), sub-space (MultiDiscrete) or bit
    (MultiBinary) left with none; every eighth row all valid. Checked by the rule (``check_mask``)."""
    rule, rng = desc.rule, np.random.default_rng(seed)
    masks = rng.random((rows, desc.mask_width)) < 0.5
    if desc.family == "bernoulli":
        pairs = masks.reshape(rows, -1, 2)
        empty = ~pairs.any(-1)
        pairs[empty, rng.integers(0, 2, size=int(empty.sum()))] = True
    else:
        nvec = np.asarray(getattr(rule, "nvec", [desc.mask_width]))
        for a, n in zip(np.concatenate([[0], np.cumsum(nvec)[:-1]]), nvec):
            part = masks[:, a:a + n]
            empty = np.flatnonzero(~part.any(-1))
            part[empty, rng.integers(0, n, size=len(empty))] = True
    masks[::8] = True
    return rule.check_mask(masks, rows)


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
    else ``verification_observations``; for a masked policy ``masked_inputs``."""
    if desc.masked:
        return masked_inputs(desc)
    return verification_episodes(desc) if desc.is_recurrent else verification_observations(desc)


def masked_inputs(desc: PolicyDescription, n_sampled: int = N_SAMPLED, seed: int = 0) -> Inputs:
    """A masked policy's verification inputs: whole episodes of its env under the env's own masks
    (``rollout_episodes``) and observations sampled from the space under random valid masks
    (``random_masks``). Recurrent: the episodes (sequences sampled from the space, under random masks,
    without an env id). Feed-forward: ``n_sampled`` sampled observations, then every step of the episodes."""
    if desc.is_recurrent:
        return with_masks(desc, verification_episodes(desc, seed), seed)
    sampled = sample_observations(desc, n_sampled, seed)
    parts = [MaskedObservations(sampled, random_masks(desc, n_sampled, seed))]
    if desc.env_id:
        ep = rollout_episodes(desc, seed=seed)
        parts.append(MaskedObservations(ep.observations.reshape((-1,) + ep.observations.shape[2:]),
                                        ep.masks.reshape(-1, desc.mask_width)))
    return MaskedObservations(np.concatenate([p.observations for p in parts]), np.concatenate([p.masks for p in parts]),
                              episodes=ep.count if desc.env_id else 0)


def with_masks(desc: PolicyDescription, inputs: Inputs, seed: int = 0) -> Inputs:
    """``inputs`` with an action mask per row for a masked policy: random valid masks (``random_masks``)
    for observations or episodes that have none; as they are otherwise (and for an unmasked policy)."""
    if not desc.masked or isinstance(inputs, MaskedObservations):
        return inputs
    if isinstance(inputs, Episodes):
        if inputs.masks is not None:
            return inputs
        masks = random_masks(desc, inputs.steps * inputs.lanes, seed).reshape(inputs.steps, inputs.lanes, -1)
        return Episodes(inputs.observations, inputs.starts, masks)
    obs = np.asarray(inputs, np.float32)
    return MaskedObservations(obs, random_masks(desc, len(obs), seed))

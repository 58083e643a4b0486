"""Acting in NumPy: sample, take the mode and encode actions for ``env.step``. No TensorFlow.

Rollout workers import this (and not ``distributions``, which needs TensorFlow) so that a
worker process starts in a fraction of a second and a few tens of MB.

Sampling is split in two so that results do not depend on how environments are grouped:
``draw(rng, n)`` makes the noise for ``n`` actions of one environment from that environment's
own generator (every transcendental function is applied here, per environment, so SIMD and
scalar code paths never see different batch shapes), and ``sample(params, noise)`` combines
parameters and noise row by row with exact operations (add, multiply, compare, argmax).
"""
from __future__ import annotations

from typing import Mapping

import gymnasium as gym
import numpy as np

PAD_LOGIT = -1e9  # probability exactly 0 after softmax, finite in KL / entropy


class ActionSampler:
    """Base class. ``params`` are dicts of ``[B, ...]`` NumPy arrays (the policy head's outputs)."""

    noise_shape: tuple[int, ...]

    def __init__(self, space: gym.Space):
        self.space = space

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Noise for ``n`` actions: ``[n, *noise_shape]``."""
        raise NotImplementedError

    def sample(self, params: Mapping[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
        """Stored-form actions ``[B, ...]`` from parameters and ``[B, *noise_shape]`` noise."""
        raise NotImplementedError

    def mode(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Batch of stored actions ``[B, ...]`` -> what ``env.step`` expects."""
        raise NotImplementedError


def _gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard Gumbel noise: argmax(logits + g) is a categorical draw."""
    u = rng.random(shape)
    return -np.log(-np.log(u + 1e-20) + 1e-20)


class CategoricalSampler(ActionSampler):
    def __init__(self, space: gym.spaces.Discrete):
        super().__init__(space)
        self.noise_shape = (int(space.n),)

    def draw(self, rng, n):
        return _gumbel(rng, (n,) + self.noise_shape)

    def sample(self, params, noise):
        return np.argmax(params["logits"] + noise, axis=-1).astype(np.int32)

    def mode(self, params):
        return np.argmax(params["logits"], axis=-1).astype(np.int32)

    def to_env(self, actions):
        return actions.astype(np.int64) + int(self.space.start)


class MultiCategoricalSampler(ActionSampler):
    """Independent categoricals, logits concatenated ``[B, sum(nvec)]``.

    Padded to ``[B, k, max(nvec)]`` with logits of -1e9 so one argmax serves all k.
    """

    def __init__(self, space: gym.spaces.MultiDiscrete):
        super().__init__(space)
        self.nvec = np.asarray(space.nvec).reshape(-1).astype(np.int64)
        total, width = int(self.nvec.sum()), int(self.nvec.max())
        index = np.full((len(self.nvec), width), total, np.int64)  # `total` is the pad column
        offset = 0
        for i, n in enumerate(self.nvec):
            index[i, :n] = np.arange(offset, offset + n)
            offset += n
        self.index = index
        self.noise_shape = index.shape

    def padded_logits(self, logits: np.ndarray) -> np.ndarray:
        """``[B, sum(nvec)] -> [B, k, max(nvec)]``."""
        pad = np.full(logits.shape[:-1] + (1,), PAD_LOGIT, logits.dtype)
        return np.concatenate([logits, pad], -1)[..., self.index]

    def draw(self, rng, n):
        return _gumbel(rng, (n,) + self.noise_shape)

    def sample(self, params, noise):
        return np.argmax(self.padded_logits(params["logits"]) + noise, -1).astype(np.int32)

    def mode(self, params):
        return np.argmax(self.padded_logits(params["logits"]), -1).astype(np.int32)

    def to_env(self, actions):
        start = np.asarray(getattr(self.space, "start", 0)).reshape(-1)
        return (actions.astype(np.int64) + start).reshape((-1,) + self.space.shape)


class BernoulliSampler(ActionSampler):
    def __init__(self, space: gym.spaces.MultiBinary):
        super().__init__(space)
        self.noise_shape = (int(np.prod(space.shape)),)

    def draw(self, rng, n):
        # u < sigmoid(l)  <=>  logit(u) < l: compare in logit space, so no exp per step.
        u = rng.random((n,) + self.noise_shape)
        return np.log(u + 1e-300) - np.log1p(-u)

    def sample(self, params, noise):
        return (noise < params["logits"]).astype(np.int32)

    def mode(self, params):
        return (params["logits"] > 0).astype(np.int32)

    def to_env(self, actions):
        return actions.astype(self.space.dtype).reshape((-1,) + self.space.shape)


class GaussianSampler(ActionSampler):
    """Diagonal Gaussian. Stored actions are unclipped samples (so log-probs are exact);
    clipping to the Box bounds happens only in ``to_env``."""

    def __init__(self, space: gym.spaces.Box):
        super().__init__(space)
        self.dim = int(np.prod(space.shape))
        self.noise_shape = (self.dim,)
        self.low = np.asarray(space.low, np.float64).reshape(-1)
        self.high = np.asarray(space.high, np.float64).reshape(-1)

    def draw(self, rng, n):
        return rng.standard_normal((n,) + self.noise_shape)

    def sample(self, params, noise):
        return (params["mean"] + np.exp(params["log_std"]) * noise).astype(np.float32)

    def mode(self, params):
        return np.asarray(params["mean"], np.float32)

    def to_env(self, actions):
        clipped = np.clip(actions, self.low, self.high)
        return clipped.astype(self.space.dtype).reshape((-1,) + self.space.shape)


def sampler_for(space: gym.Space) -> ActionSampler:
    """The NumPy sampler for an action space (``distributions.family_for`` checks support first)."""
    if isinstance(space, gym.spaces.Discrete):
        return CategoricalSampler(space)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return MultiCategoricalSampler(space)
    if isinstance(space, gym.spaces.MultiBinary):
        return BernoulliSampler(space)
    if isinstance(space, gym.spaces.Box):
        return GaussianSampler(space)
    raise TypeError(f"no sampler for action space {space!r}")


"""Action distributions: TFP for learning, NumPy for acting.

Each family knows the policy-head outputs it needs (``param_names``), builds a
``tfp.distributions.Distribution`` from them, and samples / takes the mode in
NumPy so the rollout never calls TensorFlow per step.
"""
from __future__ import annotations

import math
from typing import Mapping

import gymnasium as gym
import numpy as np
import tensorflow as tf

from keras_trpo.spaces import UnsupportedSpaceError

_PAD_LOGIT = -1e9  # probability exactly 0 after softmax, finite in KL / entropy


def _tfd():
    # tfp imports tf_keras on first use; keep that off the import path of keras_trpo.
    import tensorflow_probability as tfp

    return tfp.distributions


def _gumbel_argmax(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(logits.shape)
    return np.argmax(logits - np.log(-np.log(u + 1e-20) + 1e-20), axis=-1)


class Family:
    """Base class. ``params`` are dicts of ``[B, ...]`` arrays / tensors."""

    name: str
    param_names: tuple[str, ...]
    tf_action_dtype: tf.DType
    np_action_dtype: type

    def __init__(self, space: gym.Space):
        self.space = space

    # --- learning (TensorFlow) ---
    def make(self, params: Mapping[str, tf.Tensor]):
        raise NotImplementedError

    # --- acting (NumPy) ---
    def sample(self, params: Mapping[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def mode(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Batch of stored actions ``[B, ...]`` -> what ``env.step`` expects."""
        raise NotImplementedError

    @property
    def head_sizes(self) -> dict[str, int]:
        raise NotImplementedError


class Categorical(Family):
    name = "categorical"
    param_names = ("logits",)
    tf_action_dtype = tf.int32
    np_action_dtype = np.int32

    @property
    def head_sizes(self):
        return {"logits": int(self.space.n)}

    def make(self, params):
        return _tfd().Categorical(logits=params["logits"])

    def sample(self, params, rng):
        return _gumbel_argmax(params["logits"], rng).astype(np.int32)

    def mode(self, params):
        return np.argmax(params["logits"], axis=-1).astype(np.int32)

    def to_env(self, actions):
        return actions.astype(np.int64) + int(self.space.start)


class MultiCategorical(Family):
    """Independent categoricals, logits concatenated ``[B, sum(nvec)]``.

    Internally padded to ``[B, k, max(nvec)]`` with logits of -1e9.
    """

    name = "multi_categorical"
    param_names = ("logits",)
    tf_action_dtype = tf.int32
    np_action_dtype = np.int32

    def __init__(self, space):
        super().__init__(space)
        self.nvec = np.asarray(space.nvec).reshape(-1).astype(np.int64)
        total, width = int(self.nvec.sum()), int(self.nvec.max())
        index = np.full((len(self.nvec), width), total, np.int64)  # `total` is the pad column
        offset = 0
        for i, n in enumerate(self.nvec):
            index[i, :n] = np.arange(offset, offset + n)
            offset += n
        self._index = index

    @property
    def head_sizes(self):
        return {"logits": int(self.nvec.sum())}

    def padded_logits_np(self, logits):
        pad = np.full(logits.shape[:-1] + (1,), _PAD_LOGIT, logits.dtype)
        return np.concatenate([logits, pad], -1)[..., self._index]

    def make(self, params):
        logits = params["logits"]
        pad = tf.fill(tf.concat([tf.shape(logits)[:-1], [1]], 0), tf.constant(_PAD_LOGIT, logits.dtype))
        padded = tf.gather(tf.concat([logits, pad], -1), self._index, axis=-1)
        return _tfd().Independent(_tfd().Categorical(logits=padded), reinterpreted_batch_ndims=1)

    def sample(self, params, rng):
        return _gumbel_argmax(self.padded_logits_np(params["logits"]), rng).astype(np.int32)

    def mode(self, params):
        return np.argmax(self.padded_logits_np(params["logits"]), -1).astype(np.int32)

    def to_env(self, actions):
        start = np.asarray(getattr(self.space, "start", 0)).reshape(-1)
        return (actions.astype(np.int64) + start).reshape((-1,) + self.space.shape)


class Bernoulli(Family):
    name = "bernoulli"
    param_names = ("logits",)
    tf_action_dtype = tf.int32
    np_action_dtype = np.int32

    @property
    def head_sizes(self):
        return {"logits": int(np.prod(self.space.shape))}

    def make(self, params):
        return _tfd().Independent(_tfd().Bernoulli(logits=params["logits"], dtype=tf.int32), 1)

    def sample(self, params, rng):
        p = 1.0 / (1.0 + np.exp(-params["logits"]))
        return (rng.random(p.shape) < p).astype(np.int32)

    def mode(self, params):
        return (params["logits"] > 0).astype(np.int32)

    def to_env(self, actions):
        return actions.astype(self.space.dtype).reshape((-1,) + self.space.shape)


class DiagGaussian(Family):
    """Diagonal Gaussian with a state-independent learned log-std.

    Stored actions are unclipped samples (so log-probs are exact); clipping to
    the Box bounds happens only in ``to_env``.
    """

    name = "diag_gaussian"
    param_names = ("mean", "log_std")
    tf_action_dtype = tf.float32
    np_action_dtype = np.float32

    def __init__(self, space):
        super().__init__(space)
        self.dim = int(np.prod(space.shape))
        self.low = np.asarray(space.low, np.float64).reshape(-1)
        self.high = np.asarray(space.high, np.float64).reshape(-1)

    @property
    def head_sizes(self):
        return {"mean": self.dim, "log_std": self.dim}

    def make(self, params):
        return _tfd().MultivariateNormalDiag(loc=params["mean"], scale_diag=tf.exp(params["log_std"]))

    def sample(self, params, rng):
        mean = params["mean"]
        noise = rng.standard_normal(mean.shape)
        return (mean + np.exp(params["log_std"]) * noise).astype(np.float32)

    def mode(self, params):
        return np.asarray(params["mean"], np.float32)

    def to_env(self, actions):
        clipped = np.clip(actions, self.low, self.high)
        return clipped.astype(self.space.dtype).reshape((-1,) + self.space.shape)


def family_for(space: gym.Space) -> Family:
    """The distribution family for an action space, or a clear error."""
    if isinstance(space, gym.spaces.Discrete):
        return Categorical(space)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return MultiCategorical(space)
    if isinstance(space, gym.spaces.MultiBinary):
        return Bernoulli(space)
    if isinstance(space, gym.spaces.Box):
        return DiagGaussian(space)
    raise UnsupportedSpaceError(
        f"action space {space!r} is not supported; keras_trpo supports Discrete, Box, "
        "MultiDiscrete and MultiBinary action spaces"
    )


def gaussian_log_prob_np(mean: np.ndarray, log_std: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reference log-density of a diagonal Gaussian, ``[B, d] -> [B]`` (tests use it)."""
    var = np.exp(2 * log_std)
    return np.sum(-0.5 * (x - mean) ** 2 / var - log_std - 0.5 * math.log(2 * math.pi), axis=-1)

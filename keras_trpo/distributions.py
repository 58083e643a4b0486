"""Action distributions: TFP for learning, NumPy for acting.

Each family knows the policy-head outputs it needs (``param_names``), builds a
``tfp.distributions.Distribution`` from them, and samples / takes the mode in NumPy with the
sampling rule (keras_trpo_serving/sampling.py), so the rollout never calls TensorFlow per step.
tests/test_sampling_rule.py checks that each tfp distribution is the one the rule samples.
"""
from __future__ import annotations

import math
from typing import Mapping

import gymnasium as gym
import numpy as np
import tensorflow as tf

from keras_trpo.sampling import distribution_for
from keras_trpo_serving.sampling import (PAD_LOGIT, BernoulliRule, CategoricalRule, GaussianRule, MultiCategoricalRule,
                                         rule_for)


def _tfd():
    # tfp imports tf_keras on first use; keep that off the import path of keras_trpo.
    import tensorflow_probability as tfp

    return tfp.distributions


class Family:
    """Base class. ``params`` are dicts of ``[B, ...]`` arrays / tensors."""

    name: str
    param_names: tuple[str, ...]
    tf_action_dtype: tf.DType
    np_action_dtype: type

    def __init__(self, space: gym.Space):
        self.space = space
        self.rule = rule_for(self.name, space)  # the NumPy side, shared with TF-free rollout workers

    # --- learning (TensorFlow) ---
    def make(self, params: Mapping[str, tf.Tensor]):
        raise NotImplementedError

    # --- acting (NumPy: keras_trpo_serving.sampling's rule) ---
    def sample(self, params: Mapping[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Stored-form actions for a batch ``[B, ...]``, noise drawn from ``rng``."""
        batch = len(params[self.param_names[0]])  # the first parameter is batched (log_std may be [d])
        return self.rule.sample(params, self.rule.draw(rng, batch))

    def mode(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.rule.mode(params)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Batch of stored actions ``[B, ...]`` -> what ``env.step`` expects."""
        return self.rule.to_env(actions)

    @property
    def head_sizes(self) -> dict[str, int]:
        return self.rule.param_sizes


class Categorical(Family):
    name = CategoricalRule.distribution
    param_names = CategoricalRule.param_names
    tf_action_dtype = tf.int32
    np_action_dtype = np.int32

    def make(self, params):
        return _tfd().Categorical(logits=params["logits"])


class MultiCategorical(Family):
    """Independent categoricals, logits concatenated ``[B, sum(nvec)]``.

    Internally padded to ``[B, k, max(nvec)]`` with logits of -1e9.
    """

    name = MultiCategoricalRule.distribution
    param_names = MultiCategoricalRule.param_names
    tf_action_dtype = tf.int32
    np_action_dtype = np.int32

    def __init__(self, space):
        super().__init__(space)
        self.nvec = self.rule.nvec

    def make(self, params):
        # The rule's padded layout (MultiCategoricalRule.padded_logits), in TensorFlow.
        logits = params["logits"]
        pad = tf.fill(tf.concat([tf.shape(logits)[:-1], [1]], 0), tf.constant(PAD_LOGIT, logits.dtype))
        padded = tf.gather(tf.concat([logits, pad], -1), self.rule.index, axis=-1)
        return _tfd().Independent(_tfd().Categorical(logits=padded), reinterpreted_batch_ndims=1)


class Bernoulli(Family):
    name = BernoulliRule.distribution
    param_names = BernoulliRule.param_names
    tf_action_dtype = tf.int32
    np_action_dtype = np.int32

    def make(self, params):
        return _tfd().Independent(_tfd().Bernoulli(logits=params["logits"], dtype=tf.int32), 1)


class DiagGaussian(Family):
    """Diagonal Gaussian with a state-independent learned log-std.

    Stored actions are unclipped samples (so log-probs are exact); clipping to
    the Box bounds happens only in ``to_env``.
    """

    name = GaussianRule.distribution
    param_names = GaussianRule.param_names
    tf_action_dtype = tf.float32
    np_action_dtype = np.float32

    def make(self, params):
        return _tfd().MultivariateNormalDiag(loc=params["mean"], scale_diag=tf.exp(params["log_std"]))


FAMILIES: dict[str, type[Family]] = {f.name: f for f in (Categorical, MultiCategorical, Bernoulli, DiagGaussian)}


def family_for(space: gym.Space) -> Family:
    """The distribution family for an action space, or ``UnsupportedSpaceError`` naming it."""
    return FAMILIES[distribution_for(space)](space)


def gaussian_log_prob_np(mean: np.ndarray, log_std: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reference log-density of a diagonal Gaussian, ``[B, d] -> [B]`` (tests use it)."""
    var = np.exp(2 * log_std)
    return np.sum(-0.5 * (x - mean) ** 2 / var - log_std - 0.5 * math.log(2 * math.pi), axis=-1)

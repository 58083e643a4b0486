"""Action distributions: TFP for learning, NumPy for acting.

Each family knows the policy-head outputs it needs (``param_names``), builds a
``tfp.distributions.Distribution`` from them, and samples / takes the mode in NumPy with the
sampling rule (keras_trpo_serving/sampling.py), so the rollout never calls TensorFlow per step.
tests/test_sampling_rule.py checks that each tfp distribution is the one the rule samples.

Action masks: ``masked_params`` is the rule's ``masked_params`` in TensorFlow (the same ``MASKED_LOGIT``
and ``FORCED_LOGIT``), so learning sees the distribution acting sampled from; tests/test_masks_math.py
checks the two against each other and against closed forms.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import gymnasium as gym
import numpy as np
import tensorflow as tf

from keras_trpo.sampling import distribution_for
from keras_trpo_serving.errors import InvalidActionMask
from keras_trpo_serving.sampling import (FORCED_LOGIT, MASKED_LOGIT, PAD_LOGIT, BernoulliRule, CategoricalRule,
                                         GaussianRule, MultiCategoricalRule, rule_for)


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

    @property
    def mask_width(self) -> Optional[int]:
        """Mask entries per observation (the rule's layout), None for a family that cannot be masked."""
        return self.rule.mask_width

    def masked_params(self, params: Mapping[str, tf.Tensor], mask: Optional[tf.Tensor]) -> dict[str, tf.Tensor]:
        """The masked distribution's parameters in TensorFlow: ``params`` (``[..., k]`` logits) with the
        rule's ``masked_logits`` applied under ``mask`` (bool ``[..., mask_width]``, True = valid); None
        returns ``params`` as they are. Invalid entries are constants, so no gradient reaches them."""
        if mask is None:
            return dict(params)
        return {**params, "logits": self.masked_logits(params["logits"], mask)}

    def masked_logits(self, logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """``CategoricalRule.masked_logits`` (and MultiDiscrete's: the flat layout) in TensorFlow."""
        return tf.where(mask, logits, tf.constant(MASKED_LOGIT, logits.dtype))

    # --- acting (NumPy: keras_trpo_serving.sampling's rule) ---
    def sample(self, params: Mapping[str, np.ndarray], rng: np.random.Generator,
               mask: Optional[np.ndarray] = None) -> np.ndarray:
        """Stored-form actions for a batch ``[B, ...]``, noise drawn from ``rng``; ``mask``: bool
        ``[B, mask_width]`` (checked: ``rule.check_mask``) or None."""
        batch = len(params[self.param_names[0]])  # the first parameter is batched (log_std may be [d])
        return self.rule.sample(params, self.rule.draw(rng, batch), mask)

    def mode(self, params: Mapping[str, np.ndarray], mask: Optional[np.ndarray] = None) -> np.ndarray:
        return self.rule.mode(params, mask)

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

    def masked_logits(self, logits, mask):
        """``BernoulliRule.masked_logits`` in TensorFlow: a bit that must be 1 gets ``FORCED_LOGIT``, one
        that must be 0 ``-FORCED_LOGIT`` (``mask [..., 2n]``: ``[may be 0, may be 1]`` per bit)."""
        pairs = tf.reshape(mask, tf.concat([tf.shape(mask)[:-1], [-1, 2]], 0))
        one = tf.logical_and(pairs[..., 1], tf.logical_not(pairs[..., 0]))
        zero = tf.logical_and(pairs[..., 0], tf.logical_not(pairs[..., 1]))
        big = tf.constant(FORCED_LOGIT, logits.dtype)
        return tf.where(one, big, tf.where(zero, -big, logits))


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

    def masked_params(self, params, mask):
        if mask is None:
            return dict(params)
        raise InvalidActionMask("diag_gaussian actions cannot be masked (action masks are for Discrete, "
                                "MultiDiscrete and MultiBinary action spaces)")


FAMILIES: dict[str, type[Family]] = {f.name: f for f in (Categorical, MultiCategorical, Bernoulli, DiagGaussian)}


def family_for(space: gym.Space) -> Family:
    """The distribution family for an action space, or ``UnsupportedSpaceError`` naming it."""
    return FAMILIES[distribution_for(space)](space)


def gaussian_log_prob_np(mean: np.ndarray, log_std: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reference log-density of a diagonal Gaussian, ``[B, d] -> [B]`` (tests use it)."""
    var = np.exp(2 * log_std)
    return np.sum(-0.5 * (x - mean) ** 2 / var - log_std - 0.5 * math.log(2 * math.pi), axis=-1)

"""The serving function: raw observations in, deterministic action and distribution parameters out.

Everything a device needs is in this one graph: observation normalisation (a
layer of the policy model), the policy network, and the deterministic action in
the dtype and shape the env expects.
"""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
import tensorflow as tf

from export.errors import ExportError
from keras_trpo.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from keras_trpo.spaces import obs_shape


def input_signature(agent) -> list[tf.TensorSpec]:
    return [tf.TensorSpec((None,) + obs_shape(agent.observation_space), tf.float32, name="obs")]


def serving_function(agent) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """``obs [B, *obs_shape] float32 -> {"action", "logits" | "mean", "log_std"}``."""
    family, model, space = agent.family, agent.policy_model, agent.action_space

    if isinstance(family, Categorical):
        start = int(space.start)

        def action_of(p):
            return tf.argmax(p["logits"], axis=-1, output_type=tf.int64) + start
    elif isinstance(family, MultiCategorical):
        # NumPy here, tensors at trace time: captured eager tensors would become ONNX inputs.
        index = family._index
        start = np.asarray(space.start, np.int64).reshape(-1)
        out_shape = tuple(space.shape)

        def action_of(p):
            logits = p["logits"]
            pad = tf.fill(tf.stack([tf.shape(logits)[0], 1]), tf.constant(-1e9, logits.dtype))
            padded = tf.gather(tf.concat([logits, pad], -1), index, axis=-1)
            flat = tf.argmax(padded, axis=-1, output_type=tf.int64) + start
            return tf.reshape(flat, (-1,) + out_shape)
    elif isinstance(family, Bernoulli):
        dtype = tf.as_dtype(np.dtype(space.dtype))
        out_shape = tuple(space.shape)

        def action_of(p):
            return tf.reshape(tf.cast(p["logits"] > 0, dtype), (-1,) + out_shape)
    elif isinstance(family, DiagGaussian):
        # The Box's bounds, flat like the mean (DiagGaussian stopped carrying them in ddeb206).
        low, high = (np.asarray(b, np.float32).reshape(-1) for b in (space.low, space.high))
        dtype = tf.as_dtype(np.dtype(space.dtype))
        out_shape = tuple(space.shape)

        def action_of(p):
            return tf.reshape(tf.cast(tf.clip_by_value(p["mean"], low, high), dtype), (-1,) + out_shape)
    else:  # pragma: no cover - family_for rejects other spaces earlier
        raise ExportError(f"cannot export a policy for action space {space!r}")

    def serve(obs):
        params = model(obs, training=False)
        out = {"action": action_of(params)}
        for name in family.param_names:
            out[name] = tf.identity(params[name], name=name)
        return out

    return serve


def action_dtype(agent) -> np.dtype:
    space = agent.action_space
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return np.dtype(np.int64)
    return np.dtype(space.dtype)

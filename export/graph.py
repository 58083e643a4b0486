"""The serving function: raw observations in, deterministic action and distribution parameters out.

Everything a device needs is in this one graph: observation normalisation (a
layer of the policy model), the policy network, and the deterministic action in
the dtype and shape the env expects.

The graph sticks to ops TensorFlow Lite Micro has kernels for, so the one ``.tflite`` runs in
LiteRT and on microcontrollers alike: argmax in int32 (TFLM's ARG_MAX writes int32 only; TFLM's
CAST cannot write int64 either, so the TFLite export keeps int32 actions, ``integer_actions``,
while ONNX and the SavedModel cast them to int64), and MultiDiscrete's argmaxes over static slices of the logits (TFLM's FILL takes
no shape computed at run time, which the padded-gather form needed). Both give the same actions
as before, ties included (argmax takes the first maximum either way).
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


def serving_function(agent, integer_actions: tf.DType = tf.int64) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """``obs [B, *obs_shape] float32 -> {"action", "logits" | "mean", "log_std"}``.

    Discrete actions are ``[B]``, MultiDiscrete ``[B, *shape]``, in ``integer_actions``
    (int64, or int32 for TFLite Micro).
    """
    family, model, space = agent.family, agent.policy_model, agent.action_space
    if integer_actions not in (tf.int64, tf.int32):
        raise ExportError(f"integer_actions must be tf.int64 or tf.int32, got {integer_actions!r}")

    def as_integer(x):
        return x if integer_actions == tf.int32 else tf.cast(x, integer_actions)

    if isinstance(family, Categorical):
        start = _int32_start(space.start)

        def action_of(p):
            return as_integer(tf.argmax(p["logits"], axis=-1, output_type=tf.int32) + start)
    elif isinstance(family, MultiCategorical):
        # Python ints here, tensors at trace time: captured eager tensors would become ONNX inputs.
        nvec = [int(n) for n in np.asarray(space.nvec).reshape(-1)]
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]]).tolist()
        starts = [_int32_start(s) for s in np.asarray(space.start).reshape(-1)]
        out_shape = tuple(space.shape)

        def action_of(p):
            logits = p["logits"]
            picks = [tf.argmax(logits[:, o:o + n], axis=-1, output_type=tf.int32) + s
                     for o, n, s in zip(offsets, nvec, starts)]
            return tf.reshape(as_integer(tf.stack(picks, axis=-1)), (-1,) + out_shape)
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


def _int32_start(start) -> int:
    """A Discrete / MultiDiscrete ``start`` as the int32 the argmax is offset by in the graph."""
    start = int(start)
    if not -2**31 <= start < 2**31 - 2**16:
        raise ExportError(f"action space start {start} does not fit the graph's int32 actions")
    return start


def action_dtype(agent) -> np.dtype:
    space = agent.action_space
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return np.dtype(np.int64)
    return np.dtype(space.dtype)

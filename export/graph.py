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
from export.noise import GUMBEL_EPS, NOISE, SAMPLED_ACTION, noise_spec
from keras_trpo.distributions import Bernoulli, Categorical, DiagGaussian, MultiCategorical
from keras_trpo.spaces import obs_shape


def input_signature(agent, stochastic: bool = False) -> list[tf.TensorSpec]:
    specs = [tf.TensorSpec((None,) + obs_shape(agent.observation_space), tf.float32, name="obs")]
    if stochastic:
        specs.append(tf.TensorSpec((None, noise_spec(agent).width), tf.float32, name=NOISE))
    return specs


def serving_function(agent, integer_actions: tf.DType = tf.int64, stochastic: bool = False) -> Callable:
    """``obs [B, *obs_shape] float32 -> {"action", "logits" | "mean", "log_std"}``.

    Discrete actions are ``[B]``, MultiDiscrete ``[B, *shape]``, in ``integer_actions``
    (int64, or int32 for TFLite Micro). With ``stochastic`` the function takes
    ``(obs, noise [B, width])`` and also returns ``sampled_action`` (export/noise.py's contract).
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

    def outputs(obs):
        params = model(obs, training=False)
        out = {"action": action_of(params)}
        for name in family.param_names:
            out[name] = tf.identity(params[name], name=name)
        return params, out

    if not stochastic:
        return lambda obs: outputs(obs)[1]
    sample_of = sampled_action_function(agent, as_integer)

    def serve_sampled(obs, noise):
        params, out = outputs(obs)
        out[SAMPLED_ACTION] = tf.identity(sample_of(params, noise), name=SAMPLED_ACTION)
        return out

    return serve_sampled


def sampled_action_function(agent, as_integer: Callable) -> Callable:
    """``(params, noise) -> sampled action``: export/noise.py's formulas in float32, with the ops
    TensorFlow Lite Micro has (LOG, EXP, ADD, SUB, MUL, NEG, LESS, ARG_MAX, CAST, MINIMUM, MAXIMUM).
    ``log(1 - u)`` stands for the agent's ``log1p(-u)``: neither ONNX nor TFLite has a log1p op."""
    family, space = agent.family, agent.action_space

    def gumbel(u):  # a Python float, not an eager tensor: a captured tensor would become an ONNX input
        return -tf.math.log(-tf.math.log(u + GUMBEL_EPS) + GUMBEL_EPS)

    if isinstance(family, Categorical):
        start = _int32_start(space.start)
        return lambda p, u: as_integer(tf.argmax(p["logits"] + gumbel(u), axis=-1, output_type=tf.int32) + start)
    if isinstance(family, MultiCategorical):
        nvec = [int(n) for n in np.asarray(space.nvec).reshape(-1)]
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]]).tolist()
        starts = [_int32_start(s) for s in np.asarray(space.start).reshape(-1)]
        out_shape = tuple(space.shape)

        def multi(p, u):
            z = p["logits"] + gumbel(u)
            picks = [tf.argmax(z[:, o:o + n], axis=-1, output_type=tf.int32) + s
                     for o, n, s in zip(offsets, nvec, starts)]
            return tf.reshape(as_integer(tf.stack(picks, axis=-1)), (-1,) + out_shape)
        return multi
    if isinstance(family, Bernoulli):
        dtype = tf.as_dtype(np.dtype(space.dtype))
        out_shape = tuple(space.shape)
        return lambda p, u: tf.reshape(tf.cast(tf.math.log(u) - tf.math.log(1.0 - u) < p["logits"], dtype),
                                       (-1,) + out_shape)
    if isinstance(family, DiagGaussian):
        low, high = (np.asarray(b, np.float32).reshape(-1) for b in (space.low, space.high))
        dtype = tf.as_dtype(np.dtype(space.dtype))
        out_shape = tuple(space.shape)

        def gaussian(p, z):
            x = p["mean"] + tf.exp(p["log_std"]) * z
            return tf.reshape(tf.cast(tf.clip_by_value(x, low, high), dtype), (-1,) + out_shape)
        return gaussian
    raise ExportError(f"cannot export a sampler for action space {space!r}")  # pragma: no cover


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

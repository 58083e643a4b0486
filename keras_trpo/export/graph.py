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

A masked policy (``PolicyDescription.mask_width``) also takes ``action_mask [B, W]`` and computes
keras_trpo_serving/sampling.py's masked logits in the graph (``masked_params``): an invalid action's logit
becomes ``MASKED_LOGIT``, a MultiBinary bit with one allowed value ``+-FORCED_LOGIT`` (and its sampled
value is set from the mask whatever the noise), MultiDiscrete masked on the flat layout. The
``logits`` output is the masked distribution's; ``action`` and ``sampled_action`` are taken from it.
With SELECT_V2 and GREATER only (TensorFlow Lite Micro has both), an all-ones mask selects the
logits themselves: the outputs are the unmasked graph's bit for bit.
"""
from __future__ import annotations

from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_trpo.export.description import PolicyDescription
from keras_trpo.export.errors import ExportError
from keras_trpo.export.inputs import ACTION, ACTION_MASK, OBS, STATE_IN, STATE_OUT
from keras_trpo.export.noise import NOISE, SAMPLED_ACTION
from keras_trpo.layers import RecurrentCore
from keras_trpo_serving.sampling import FORCED_LOGIT, GUMBEL_EPS, MASKED_LOGIT


def input_signature(desc: PolicyDescription, stochastic: bool = False) -> list[tf.TensorSpec]:
    """The graph's inputs in ``PolicyDescription.input_names`` order: observations (``obs``, or one
    per Dict key), ``action_mask`` (masked), ``noise`` (stochastic), ``state_in`` (recurrent)."""
    return [tf.TensorSpec((None,) + shape, tf.float32, name=n) for n, shape in desc.input_shapes(stochastic).items()]


def serving_function(desc: PolicyDescription, integer_actions: tf.DType = tf.int64,
                     stochastic: bool = False) -> Callable:
    """``(*inputs) -> {"action", "logits" | "mean", "log_std"[, "sampled_action"][, "state_out"]}``,
    the inputs positional in ``input_signature`` order (keras_trpo/export/inputs.py).

    ``obs [B, *obs_shape] float32`` (or one input per Dict key). Discrete actions are ``[B]``,
    MultiDiscrete ``[B, *shape]``, in ``integer_actions`` (int64, or int32 for TFLite Micro). With
    ``stochastic`` the function also takes ``noise [B, width]`` and returns ``sampled_action``
    (keras_trpo/export/noise.py's contract). A recurrent policy also takes ``state_in [B, S]`` and returns
    ``state_out [B, S]``: one step of the model (T = 1, no episode start: the caller zeroes the state).
    A masked policy also takes ``action_mask [B, W]`` (``masked_params``): ``logits`` is then the masked
    distribution's, and both actions respect the mask.
    """
    family, model, space = desc.family, desc.model, desc.action_space
    if integer_actions not in (tf.int64, tf.int32):
        raise ExportError(f"integer_actions must be tf.int64 or tf.int32, got {integer_actions!r}")

    def as_integer(x):
        return x if integer_actions == tf.int32 else tf.cast(x, integer_actions)

    if family == "categorical":
        start = _int32_start(space.start)

        def action_of(p):
            return as_integer(tf.argmax(p["logits"], axis=-1, output_type=tf.int32) + start)
    elif family == "multi_categorical":
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
    elif family == "bernoulli":
        dtype = tf.as_dtype(np.dtype(space.dtype))
        out_shape = tuple(space.shape)

        def action_of(p):
            return tf.reshape(tf.cast(p["logits"] > 0, dtype), (-1,) + out_shape)
    elif family == "diag_gaussian":
        # The Box's bounds, flat like the mean (DiagGaussian stopped carrying them in ddeb206).
        low, high = (np.asarray(b, np.float32).reshape(-1) for b in (space.low, space.high))
        dtype = tf.as_dtype(np.dtype(space.dtype))
        out_shape = tuple(space.shape)

        def action_of(p):
            return tf.reshape(tf.cast(tf.clip_by_value(p["mean"], low, high), dtype), (-1,) + out_shape)
    else:  # pragma: no cover - family_for rejects other spaces earlier
        raise ExportError(f"cannot export a policy for action space {space!r}")

    names = desc.input_names(stochastic)
    keys = list(desc.observation_names)
    recurrent = desc.is_recurrent

    def params_of(inputs: dict) -> tuple[dict, Optional[tf.Tensor]]:
        """The distribution parameters ``[B, k]`` (and the state after the step, recurrent)."""
        obs = inputs[OBS] if keys == [OBS] else {k: inputs[k] for k in keys}
        if not recurrent:
            return model(obs, training=False), None
        state = inputs[STATE_IN]
        # starts 0 as a product, not a Fill whose shape is computed at run time (TFLite Micro has none).
        out = one_step(model, {"obs": obs, "starts": state[:, 0] * 0.0, "state": state})
        return {n: out[n] for n in desc.param_names}, out["state"]

    def serve(*tensors):
        inputs = dict(zip(names, tensors))
        params, state = params_of(inputs)
        mask = inputs.get(ACTION_MASK)
        if mask is not None:
            params = masked_params(desc, params, mask)
        out = {ACTION: action_of(params)}
        for name in desc.param_names:
            out[name] = tf.identity(params[name], name=name)
        if stochastic:
            sampled = sample_of(params, inputs[NOISE])
            if mask is not None and family == "bernoulli":
                sampled = forced_bits(sampled, mask, tuple(space.shape))
            out[SAMPLED_ACTION] = tf.identity(sampled, name=SAMPLED_ACTION)
        if recurrent:
            out[STATE_OUT] = tf.identity(state, name=STATE_OUT)
        return out

    sample_of = sampled_action_function(desc, as_integer) if stochastic else None
    return serve


def _allowed(mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A MultiBinary mask ``[B, 2n]`` -> bool ``(may be 0, may be 1)``, each ``[B, n]``."""
    return mask[:, 0::2] > 0.5, mask[:, 1::2] > 0.5


def masked_params(desc: PolicyDescription, params: dict, mask: tf.Tensor) -> dict:
    """``params`` with keras_trpo_serving/sampling.py's masked logits (``SamplingRule.masked_logits``),
    ``mask [B, W]`` float32, ``> 0.5`` valid: ``MASKED_LOGIT`` where invalid (the flat layout for
    MultiDiscrete, before its per-categorical argmaxes); for MultiBinary ``FORCED_LOGIT`` on a bit that
    may only be 1, ``-FORCED_LOGIT`` on one that may only be 0, the logit where both (or, for a mask the
    rule refuses, neither) are allowed. Python floats, not eager tensors: a captured tensor would
    become an ONNX input."""
    logits = params["logits"]
    if desc.family == "bernoulli":
        may0, may1 = _allowed(mask)
        masked = tf.where(may0, tf.where(may1, logits, -FORCED_LOGIT), tf.where(may1, FORCED_LOGIT, logits))
    elif desc.family in ("categorical", "multi_categorical"):
        masked = tf.where(mask > 0.5, logits, MASKED_LOGIT)
    else:
        raise ExportError(f"{desc.family} actions cannot be masked")
    return {**params, "logits": masked}


def forced_bits(bits: tf.Tensor, mask: tf.Tensor, shape: tuple[int, ...]) -> tf.Tensor:
    """Sampled MultiBinary bits ``[B, *shape]`` with each forced bit set from ``mask [B, 2n]`` whatever
    the noise (the rule's ``BernoulliRule.sample``: at ``u = 0`` the contract noise is ``-inf``, below
    even ``-FORCED_LOGIT``)."""
    may0, may1 = (tf.reshape(m, (-1,) + shape) for m in _allowed(mask))
    one, zero = tf.constant(1, bits.dtype), tf.constant(0, bits.dtype)  # scalars: no FILL of a run-time shape
    return tf.where(may0, tf.where(may1, bits, zero), tf.where(may1, one, bits))


def one_step(model, inputs: dict) -> dict:
    """A recurrent policy model for one step, without the time axis: ``{"obs": [B, ...] (or {key:
    [B, ...]}), "starts": [B], "state": [B, S]} -> {param name: [B, k], "state": [B, S]}``.

    The model's layers are run as its graph connects them, on tensors without the time axis, and
    ``RecurrentCore`` is given T = 1 (one step, no loop) and its outputs taken at that step. Why
    not ``model`` on ``[B, 1, ...]``: a Dense layer on a rank-3 input with a dynamic batch is a
    tensordot whose shape arithmetic (SHAPE, GATHER, REDUCE_PROD, PACK) TFLite Micro cannot run;
    on ``[B, F]`` it is one FULLY_CONNECTED. Every layer but the core is per-row or per-entry,
    so the arithmetic is the model's.
    """
    def operation(op):
        if isinstance(op, RecurrentCore):
            def core(args, **kwargs):
                x, starts, state = args
                h, states, final = op([x[:, None], starts[:, None], state], **kwargs)
                return h[:, 0], states[:, 0], final
            return core
        if isinstance(op, keras.Sequential):  # e.g. the Dense torso: its layers, one after the other
            def sequential(x, **kwargs):
                for layer in op.layers:
                    x = operation(layer)(x)
                return x
            return sequential
        if isinstance(op, keras.Model):  # a nested functional model checks its inputs' rank: walk it too
            return lambda x, **kwargs: op._run_through_graph(x, operation_fn=operation)
        return op

    try:
        run = model._run_through_graph  # Keras 3's functional graph walk (keras.src.ops.function)
    except AttributeError:  # pragma: no cover - a Keras without it
        raise ExportError("exporting a recurrent policy needs Keras 3's functional models (keras >= 3.0)") from None
    return run(inputs, operation_fn=operation)


def sampled_action_function(desc: PolicyDescription, as_integer: Callable) -> Callable:
    """``(params, noise) -> sampled action``: keras_trpo/export/noise.py's formulas in float32, with the ops
    TensorFlow Lite Micro has (LOG, EXP, ADD, SUB, MUL, NEG, LESS, ARG_MAX, CAST, MINIMUM, MAXIMUM).
    ``log(1 - u)`` stands for the agent's ``log1p(-u)``: neither ONNX nor TFLite has a log1p op."""
    family, space = desc.family, desc.action_space

    def gumbel(u):  # a Python float, not an eager tensor: a captured tensor would become an ONNX input
        return -tf.math.log(-tf.math.log(u + GUMBEL_EPS) + GUMBEL_EPS)

    if family == "categorical":
        start = _int32_start(space.start)
        return lambda p, u: as_integer(tf.argmax(p["logits"] + gumbel(u), axis=-1, output_type=tf.int32) + start)
    if family == "multi_categorical":
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
    if family == "bernoulli":
        dtype = tf.as_dtype(np.dtype(space.dtype))
        out_shape = tuple(space.shape)
        return lambda p, u: tf.reshape(tf.cast(tf.math.log(u) - tf.math.log(1.0 - u) < p["logits"], dtype),
                                       (-1,) + out_shape)
    if family == "diag_gaussian":
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


"""The policy as plain arrays for the C export: what each layer of the Keras policy computes,
read from the model, or an ``ExportError`` naming the first layer C cannot express.

The C export supports what ``keras_trpo.numpy_policy`` runs, and a few more activations: an
optional observation normaliser (or one-hot for Discrete observations), a stack of Dense layers
(a ``keras.Sequential`` of Dense, a single Dense, or a functional model that is a chain of
Dense), the head (``policy_logits`` or ``policy_mean``) and the state-independent log-std.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import gymnasium as gym
import keras
import numpy as np

from export.errors import ExportError
from keras_trpo.layers import ObservationNormalizer, OneHot, StateIndependentLogStd

# Keras activation name -> the C expression for it, of a float ``x`` (math.h float functions).
# Each matches keras.activations.<name> with its default arguments; the export's verification
# (C against the TensorFlow agent, 1e-5) checks every one of them in tests/test_export_c.py.
C_ACTIVATIONS: dict[str, str] = {
    "linear": "x",
    "tanh": "ort_tanh(x)",  # onnxruntime's tanh, bit for bit: see c_source.ORT_TANH
    "relu": "(x > 0.0f ? x : 0.0f)",
    "sigmoid": "(1.0f / (1.0f + expf(-x)))",
    "elu": "(x > 0.0f ? x : expm1f(x))",
    "selu": "(1.0507009873554805f * (x > 0.0f ? x : 1.6732632423543772f * expm1f(x)))",
    "softplus": "(x > 20.0f ? x : log1pf(expf(x)))",
    "softsign": "(x / (1.0f + fabsf(x)))",
    "silu": "(x / (1.0f + expf(-x)))",
    "swish": "(x / (1.0f + expf(-x)))",
    "gelu": "(0.5f * x * (1.0f + erff(x * 0.70710678118654752f)))",
    "leaky_relu": "(x > 0.0f ? x : 0.2f * x)",
    "relu6": "(x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f)",
    "hard_sigmoid": "(x > -3.0f ? (x < 3.0f ? (x + 3.0f) / 6.0f : 1.0f) : 0.0f)",
    "exponential": "expf(x)",
}
HEAD_NAMES = {"policy_logits": "logits", "policy_mean": "mean"}


@dataclass
class Dense:
    """``y = activation(x @ kernel + bias)``: kernel ``[n_in, n_out]`` float32, bias ``[n_out]``."""

    kernel: np.ndarray
    bias: np.ndarray
    activation: str
    name: str

    @property
    def n_in(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.kernel.shape[1])


@dataclass
class CPolicy:
    """Everything the generated C computes, as arrays.

    ``obs_size``: floats per observation (1 for a Discrete observation, its index).
    ``one_hot``: n for a Discrete observation (one-hot of the truncated index, zeros when out of
    range, as the OneHot layer does), else None. ``normalizer``: ``(mean, inv_std, clip)``, each
    ``[obs_size]`` float32 with ``inv_std = 1 / sqrt(var + eps)`` by TensorFlow's float32 kernels,
    for ``clip((x - mean) * inv_std, -clip, clip)``: the exported graph's form (TensorFlow folds the
    division into a multiplication by the reciprocal before tf2onnx sees it). ``layers``: the torso; ``head``: linear, to the
    logits ``[k]`` or the mean ``[d]``; ``log_std [d]`` for a Gaussian.
    """

    family: str  # categorical, multi_categorical, bernoulli, diag_gaussian
    obs_size: int
    one_hot: Optional[int]
    normalizer: Optional[tuple[np.ndarray, np.ndarray, float]]
    layers: list[Dense]
    head: Dense
    log_std: Optional[np.ndarray]
    action_size: int  # elements of one action, flattened
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per categorical
    nvec: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # categories per categorical
    low: Optional[np.ndarray] = None  # Box bounds [d] float32 (+-inf where unbounded)
    high: Optional[np.ndarray] = None

    @property
    def params_size(self) -> int:
        """Floats of ``params``: logits ``[k]``, or mean ``[d]`` then log_std ``[d]``."""
        return self.head.n_out * (2 if self.log_std is not None else 1)

    @property
    def noise_size(self) -> int:
        """Floats of ``noise`` (export/noise.py): a uniform per logit, or a standard normal per mean."""
        return self.head.n_out

    @property
    def max_width(self) -> int:
        return max([self.obs_size, self.one_hot or 0] + [d.n_out for d in self.layers] + [self.head.n_out])


def _activation_name(layer: keras.layers.Dense) -> str:
    return getattr(layer.activation, "__name__", type(layer.activation).__name__)


def _dense(layer: keras.layers.Dense, where: str) -> Dense:
    activation = _activation_name(layer)
    if activation not in C_ACTIVATIONS:
        raise ExportError(f"the C export cannot express activation {activation!r} of layer {layer.name!r} in the "
                          f"{where}; supported: {', '.join(sorted(C_ACTIVATIONS))}")
    kernel = np.asarray(layer.kernel.numpy(), np.float32)
    bias = np.asarray(layer.bias.numpy(), np.float32) if layer.use_bias else np.zeros(kernel.shape[1], np.float32)
    if kernel.ndim != 2:
        raise ExportError(f"the C export needs 2-D Dense kernels; layer {layer.name!r} has shape {kernel.shape}")
    return Dense(kernel, bias, activation, layer.name)


def _torso_layers(layer: keras.layers.Layer) -> list[Dense]:
    """The Dense layers of a torso, in order, or ``ExportError`` naming the first other layer."""
    if isinstance(layer, keras.layers.Dense):
        return [_dense(layer, "policy torso")]
    if isinstance(layer, keras.Model):
        subs = [s for s in layer.layers if not isinstance(s, keras.layers.InputLayer)]
        out = []
        for sub in subs:
            if not isinstance(sub, keras.layers.Dense):
                raise ExportError(f"the C export cannot express layer {sub.name!r} ({type(sub).__name__}) of the "
                                  f"policy torso {layer.name!r}: it supports Dense layers only (a CNN or other "
                                  "torso exports to ONNX and .tflite)")
            out.append(_dense(sub, f"policy torso {layer.name!r}"))
        return out
    raise ExportError(f"the C export cannot express layer {layer.name!r} ({type(layer).__name__}) of the policy: "
                      "it supports Dense torsos only (a CNN or other torso exports to ONNX and .tflite)")


def _chain(layers: list[Dense], width: int) -> None:
    """Each layer must take what the one before gives (a functional torso must be a chain)."""
    for d in layers:
        if d.n_in != width:
            raise ExportError(f"the C export needs a chain of Dense layers; layer {d.name!r} takes {d.n_in} inputs "
                              f"but receives {width}")
        width = d.n_out


def c_policy(agent) -> CPolicy:
    """The agent's policy as a ``CPolicy``; ``ExportError`` names anything C cannot express."""
    obs_space, space, family = agent.observation_space, agent.action_space, agent.family.name
    if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) != 1:
        raise ExportError(f"the C export takes flat observations; this policy's have shape {obs_space.shape} "
                          "(wrap the env in gymnasium.wrappers.FlattenObservation and train on that)")
    obs_size = int(obs_space.shape[0]) if isinstance(obs_space, gym.spaces.Box) else 1
    one_hot = normalizer = head = log_std = None
    layers: list[Dense] = []
    for layer in agent.policy_model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, ObservationNormalizer):
            var = np.asarray(layer.var.numpy(), np.float32).reshape(-1)
            # TensorFlow's own float32 kernels, as the exporter's constant folding evaluates them:
            # its Reciprocal is not always the correctly rounded 1/x that NumPy would give.
            inv_std = np.asarray(keras.ops.reciprocal(keras.ops.sqrt(var + np.float32(layer.epsilon))), np.float32)
            normalizer = (np.asarray(layer.mean.numpy(), np.float32).reshape(-1), inv_std, float(layer.clip))
        elif isinstance(layer, OneHot):
            one_hot = int(layer.n)
        elif isinstance(layer, StateIndependentLogStd):
            log_std = np.asarray(layer.log_std.numpy(), np.float32).reshape(-1)
        elif layer.name in HEAD_NAMES and isinstance(layer, keras.layers.Dense):
            head = _dense(layer, "policy head")
            if head.activation != "linear":
                raise ExportError(f"the policy head {layer.name!r} has activation {head.activation!r}; expected linear")
        elif isinstance(layer, keras.layers.Flatten):
            raise ExportError(f"the C export cannot express layer {layer.name!r} (Flatten after a torso with "
                              "multi-dimensional output, such as a CNN): it supports Dense torsos only")
        else:
            layers.extend(_torso_layers(layer))
    if head is None:
        raise ExportError("the policy model has no 'policy_logits' or 'policy_mean' head layer")
    _chain(layers + [head], one_hot or obs_size)
    policy = CPolicy(family, obs_size, one_hot, normalizer, layers, head, log_std,
                     action_size=int(np.prod(space.shape)) if space.shape else 1)
    if family == "categorical":
        policy.nvec, policy.starts = np.array([int(space.n)]), np.array([int(space.start)])
    elif family == "multi_categorical":
        policy.nvec = np.asarray(space.nvec, np.int64).reshape(-1)
        policy.starts = np.broadcast_to(np.asarray(space.start, np.int64), np.shape(space.nvec)).reshape(-1)
    elif family == "diag_gaussian":
        policy.low = np.asarray(space.low, np.float32).reshape(-1)
        policy.high = np.asarray(space.high, np.float32).reshape(-1)
    if len(policy.starts) and (policy.starts.min() < -2**31 or (policy.starts + policy.nvec).max() > 2**31 - 1):
        raise ExportError(f"action values beyond int32 (start {policy.starts.tolist()}): the C export's actions "
                          "are int32_t")
    arrays = [d.kernel for d in layers + [head]] + [d.bias for d in layers + [head]]
    arrays += [a for a in (normalizer or ())[:2]] + ([log_std] if log_std is not None else [])
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ExportError("the policy's weights or normaliser statistics contain NaN or inf")
    return policy

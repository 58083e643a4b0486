"""The policy as plain arrays for the C export: what each layer of the Keras policy computes,
read from the model, or an ``ExportError`` naming the first layer C cannot express.

The C export supports what ``keras_trpo.numpy_policy`` runs, and a few more activations: an
optional observation normaliser (or one-hot for Discrete observations), a stack of Dense layers
(a ``keras.Sequential`` of Dense, a single Dense, or a functional model that is a chain of
Dense), the head (``policy_logits`` or ``policy_mean``) and the state-independent log-std.

A Dict observation is one ``CInput`` per key in sorted-key order (its own normaliser, or one-hot
for a Discrete key), concatenated as ``keras_trpo.dict_networks`` does; a recurrent policy has a
``Recurrent`` core (Keras's ``LSTMCell`` / ``GRUCell(reset_after=True)`` weights, as
``keras_trpo.layers.RecurrentCore`` holds them) between the observation features and the torso.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import gymnasium as gym
import keras
import numpy as np

from keras_trpo.export.errors import ExportError
from keras_trpo.dict_obs import layout_of
from keras_trpo.layers import ObservationNormalizer, OneHot, RecurrentCore, StateIndependentLogStd

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
class CInput:
    """One observation input: ``obs`` of a Box or Discrete space, or one key of a Dict.

    ``size``: floats the caller passes (1 for a Discrete index). ``one_hot``: n for a Discrete
    input (one-hot of the truncated index, zeros when out of range, as the OneHot layer does),
    else None. ``normalizer``: ``(mean, inv_std, clip)``, each ``[size]`` float32 with
    ``inv_std = 1 / sqrt(var + eps)`` by TensorFlow's float32 kernels, for
    ``clip((x - mean) * inv_std, -clip, clip)``: the exported graph's form (TensorFlow folds the
    division into a multiplication by the reciprocal before tf2onnx sees it).
    """

    key: str
    size: int
    one_hot: Optional[int] = None
    normalizer: Optional[tuple[np.ndarray, np.ndarray, float]] = None

    @property
    def width(self) -> int:
        """Features this input contributes to the concatenation."""
        return self.one_hot or self.size


@dataclass
class Recurrent:
    """An LSTM or GRU core, as ``RecurrentCore`` holds it (gates i, f, c, o or z, r, h).

    ``kernel [F, G u]``, ``recurrent_kernel [u, G u]``, ``bias [G u]`` (LSTM) or ``[2, G u]``
    (GRU, ``reset_after=True``: input bias then recurrent bias), float32. The state is ``[h, c]``
    (``2 u`` floats) for an LSTM and ``h`` (``u``) for a GRU.
    """

    cell: str  # "lstm" or "gru"
    units: int
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray

    @property
    def gates(self) -> int:
        return 4 if self.cell == "lstm" else 3

    @property
    def n_in(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def state_size(self) -> int:
        return 2 * self.units if self.cell == "lstm" else self.units


@dataclass
class CPolicy:
    """Everything the generated C computes, as arrays.

    ``inputs``: the observation inputs (one ``obs``, or a Dict's keys in sorted order), whose
    features are concatenated in that order; ``dict_obs``: whether they are a Dict's keys.
    ``obs_size``: floats per observation, all inputs side by side (a Dict's packed width).
    ``recurrent``: the LSTM/GRU core after the features, or None. ``layers``: the torso;
    ``head``: linear, to the logits ``[k]`` or the mean ``[d]``; ``log_std [d]`` for a Gaussian.
    """

    family: str  # categorical, multi_categorical, bernoulli, diag_gaussian
    inputs: list[CInput]
    dict_obs: bool
    recurrent: Optional[Recurrent]
    layers: list[Dense]
    head: Dense
    log_std: Optional[np.ndarray]
    action_size: int  # elements of one action, flattened
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per categorical
    nvec: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # categories per categorical
    low: Optional[np.ndarray] = None  # Box bounds [d] float32 (+-inf where unbounded)
    high: Optional[np.ndarray] = None

    @property
    def obs_size(self) -> int:
        return sum(i.size for i in self.inputs)

    @property
    def features(self) -> int:
        """Width of the concatenated observation features (what the core or first layer takes)."""
        return sum(i.width for i in self.inputs)

    @property
    def state_size(self) -> int:
        return self.recurrent.state_size if self.recurrent is not None else 0

    @property
    def params_size(self) -> int:
        """Floats of ``params``: logits ``[k]``, or mean ``[d]`` then log_std ``[d]``."""
        return self.head.n_out * (2 if self.log_std is not None else 1)

    @property
    def noise_size(self) -> int:
        """Floats of ``noise`` (keras_trpo/export/noise.py): a uniform per logit, or a standard normal per mean."""
        return self.head.n_out

    @property
    def max_width(self) -> int:
        core = [self.recurrent.units] if self.recurrent is not None else []
        return max([self.obs_size, self.features] + core + [d.n_out for d in self.layers] + [self.head.n_out])


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


# C99's keywords and the identifiers the generated code declares: a Dict key names a struct field.
C_RESERVED = frozenset("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary""".split())


def check_c_keys(keys: list[str]) -> None:
    """``ExportError`` unless every Dict key can name a C struct field and a distinct size macro."""
    seen: dict[str, str] = {}
    for key in keys:
        if key in C_RESERVED:
            raise ExportError(f"Dict observation key {key!r} is a C keyword and cannot name a field of the C export's "
                              "observation struct: rename it (e.g. with a gymnasium ObservationWrapper)")
        if key.upper() in seen:
            raise ExportError(f"Dict observation keys {seen[key.upper()]!r} and {key!r} give the same C size macro "
                              f"(..._OBS_{key.upper()}_SIZE): rename one")
        seen[key.upper()] = key


def _normalizer(layer: ObservationNormalizer) -> tuple[np.ndarray, np.ndarray, float]:
    var = np.asarray(layer.var.numpy(), np.float32).reshape(-1)
    # TensorFlow's own float32 kernels, as the exporter's constant folding evaluates them:
    # its Reciprocal is not always the correctly rounded 1/x that NumPy would give.
    inv_std = np.asarray(keras.ops.reciprocal(keras.ops.sqrt(var + np.float32(layer.epsilon))), np.float32)
    return np.asarray(layer.mean.numpy(), np.float32).reshape(-1), inv_std, float(layer.clip)


def _observation_inputs(agent, model: keras.Model) -> tuple[list[CInput], bool, set[str]]:
    """The observation inputs and the names of the layers they account for."""
    obs_space = agent.observation_space
    layout = layout_of(obs_space)
    if layout is None:
        if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) != 1:
            raise ExportError(f"the C export takes flat observations; this policy's have shape {obs_space.shape} "
                              "(wrap the env in gymnasium.wrappers.FlattenObservation and train on that)")
        size = int(obs_space.shape[0]) if isinstance(obs_space, gym.spaces.Box) else 1
        one = CInput("obs", size)
        used = set()
        for layer in model.layers:
            if isinstance(layer, ObservationNormalizer):
                one.normalizer, _ = _normalizer(layer), used.add(layer.name)
            elif isinstance(layer, OneHot):
                one.one_hot, _ = int(layer.n), used.add(layer.name)
        return [one], False, used
    check_c_keys(list(layout.keys))
    by_name = {layer.name: layer for layer in model.layers}
    inputs, used = [], {"policy_obs_concat"}
    for e in layout.entries:
        entry = CInput(e.key, e.stop - e.start)
        if e.kind == "discrete":
            layer = by_name.get(f"policy_one_hot_{e.key}")
            if not isinstance(layer, OneHot):
                raise ExportError(f"the policy model has no one-hot layer 'policy_one_hot_{e.key}' for Discrete key {e.key!r}")
            entry.one_hot = int(layer.n)
            used.add(layer.name)
        elif isinstance(by_name.get(f"policy_obs_normalizer_{e.key}"), ObservationNormalizer):
            entry.normalizer = _normalizer(by_name[f"policy_obs_normalizer_{e.key}"])
            used.add(f"policy_obs_normalizer_{e.key}")
        inputs.append(entry)
    return inputs, True, used


def _recurrent(layer: RecurrentCore) -> Recurrent:
    kernel, recurrent_kernel, bias = (np.asarray(w.numpy(), np.float32) for w in (layer.kernel, layer.recurrent_kernel, layer.bias))
    return Recurrent(layer.cell, int(layer.units), kernel, recurrent_kernel, bias)


def c_policy(agent) -> CPolicy:
    """The agent's policy as a ``CPolicy``; ``ExportError`` names anything C cannot express."""
    space, family, model = agent.action_space, agent.family.name, agent.policy_model
    inputs, dict_obs, used = _observation_inputs(agent, model)
    head = log_std = recurrent = None
    layers: list[Dense] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name in used:
            continue
        if isinstance(layer, RecurrentCore):
            if layers:
                raise ExportError(f"the C export needs the recurrent core {layer.name!r} right after the observation "
                                  "features (as keras_trpo builds it)")
            recurrent = _recurrent(layer)
        elif isinstance(layer, (ObservationNormalizer, OneHot, keras.layers.Concatenate)):
            raise ExportError(f"the C export cannot place layer {layer.name!r} ({type(layer).__name__}) of the policy")
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
    features = sum(i.width for i in inputs)
    if recurrent is not None:
        if recurrent.n_in != features:
            raise ExportError(f"the recurrent core {recurrent.cell} takes {recurrent.n_in} inputs but the observation "
                              f"gives {features}")
        features = recurrent.units
    _chain(layers + [head], features)
    policy = CPolicy(family, inputs, dict_obs, recurrent, layers, head, log_std,
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
    arrays += [a for i in inputs for a in (i.normalizer or ())[:2]] + ([log_std] if log_std is not None else [])
    if recurrent is not None:
        arrays += [recurrent.kernel, recurrent.recurrent_kernel, recurrent.bias]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ExportError("the policy's weights or normaliser statistics contain NaN or inf")
    return policy

"""The Keras policy model -> its ``PolicyPlan``, or ``PlanError`` naming the first layer a plan
cannot express. The one place that reads the policy's Keras weights into arrays.

A plan holds what ``keras_trpo.policies.networks`` builds: an optional observation normaliser (or one-hot
for a Discrete observation; per key for a Dict, concatenated in sorted-key order), an optional
recurrent core (``layers.RecurrentCore``) right after the observation features, a torso of Dense
layers (a single Dense, a ``keras.Sequential`` of Dense, or a functional model that is a chain of
Dense), the head (``policy_logits`` or ``policy_mean``) and the state-independent log-std.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import keras
import numpy as np

from keras_trpo.dict_obs import DictLayout
from keras_trpo.layers import ObservationNormalizer, OneHot, RecurrentCore, StateIndependentLogStd
from keras_trpo.plan.activations import ACTIVATIONS
from keras_trpo.plan.description import (HEAD_OUTPUTS, Dense, Normalizer, ObsInput, PlanError,
                                         PolicyPlan, Recurrent)
from keras_trpo.policies.dict_networks import PackedDictModel, normalizer_name

if TYPE_CHECKING:
    from keras_trpo.distributions import Family

PREFIX = "policy"  # the policy model's layer names: f"{PREFIX}_one_hot_{key}", ...
TORSO_HINT = "(a CNN or other torso exports to ONNX and .tflite)"


def read_plan(model: keras.Model, family: Family, layout: Optional[DictLayout] = None) -> PolicyPlan:
    """The policy model's current weights as a ``PolicyPlan``.

    ``model``: the policy model, or the ``PackedDictModel`` around a Dict one; ``family``: its
    action family (whose sampling rule the plan holds); ``layout``: a Dict observation's layout when
    ``model`` is the Dict model itself (``dict_obs.layout_of(observation_space)``).
    """
    if isinstance(model, PackedDictModel):
        layout, model = model.layout, model.inner
    inputs, used = _dict_inputs(model, layout) if layout is not None else _single_input(model)
    head = log_std = recurrent = None
    layers: list[Dense] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name in used:
            continue
        if isinstance(layer, RecurrentCore):
            if layers:
                raise PlanError(f"{{who}} needs the recurrent core {layer.name!r} right after the observation "
                                "features (as keras_trpo builds it)")
            recurrent = _recurrent(layer)
        elif isinstance(layer, (ObservationNormalizer, OneHot, keras.layers.Concatenate)):
            raise PlanError(f"{{who}} cannot place layer {layer.name!r} ({type(layer).__name__}) of the policy")
        elif isinstance(layer, StateIndependentLogStd):
            log_std = np.asarray(layer.log_std.numpy(), np.float32).reshape(-1)
        elif layer.name in HEAD_OUTPUTS and isinstance(layer, keras.layers.Dense):
            head = _dense(layer, "policy head")
            if head.activation != "linear":
                raise PlanError(f"the policy head {layer.name!r} has activation {head.activation!r}; expected linear")
        elif isinstance(layer, keras.layers.Flatten):
            raise PlanError(f"{{who}} cannot express layer {layer.name!r} (Flatten after a torso with "
                            "multi-dimensional output, such as a CNN): it supports Dense torsos only")
        else:
            layers.extend(_torso_layers(layer))
    if head is None:
        raise PlanError("the policy model has no 'policy_logits' or 'policy_mean' head layer")
    features = sum(i.width for i in inputs)
    if recurrent is not None:
        if recurrent.n_in != features:
            raise PlanError(f"the recurrent core {recurrent.cell} takes {recurrent.n_in} inputs but the observation "
                            f"gives {features}")
        features = recurrent.units
    _check_chain(layers + [head], features)
    rule = family.rule
    if head.n_out != rule.noise_width:
        raise PlanError(f"the policy head {head.name!r} gives {head.n_out} values but the {rule.distribution} action "
                        f"space takes {rule.noise_width}")
    return PolicyPlan(tuple(inputs), layout is not None, recurrent, tuple(layers), head, HEAD_OUTPUTS[head.name],
                      log_std, rule)


def _activation_name(layer: keras.layers.Dense) -> str:
    return getattr(layer.activation, "__name__", type(layer.activation).__name__)


def _dense(layer: keras.layers.Dense, where: str) -> Dense:
    activation = _activation_name(layer)
    if activation not in ACTIVATIONS:
        raise PlanError(f"{{who}} cannot express activation {activation!r} of layer {layer.name!r} in the {where}; "
                        f"supported: {', '.join(sorted(ACTIVATIONS))}")
    kernel = np.asarray(layer.kernel.numpy(), np.float32)
    if kernel.ndim != 2:
        raise PlanError(f"{{who}} needs 2-D Dense kernels; layer {layer.name!r} has shape {kernel.shape}")
    bias = np.asarray(layer.bias.numpy(), np.float32) if layer.use_bias else np.zeros(kernel.shape[1], np.float32)
    return Dense(kernel, bias, activation, layer.name)


def _torso_layers(layer: keras.layers.Layer) -> list[Dense]:
    """The Dense layers of a torso, in order, or ``PlanError`` naming the first other layer."""
    if isinstance(layer, keras.layers.Dense):
        return [_dense(layer, "policy torso")]
    if isinstance(layer, keras.Model):
        out = []
        for sub in layer.layers:
            if isinstance(sub, keras.layers.InputLayer):
                continue
            if not isinstance(sub, keras.layers.Dense):
                raise PlanError(f"{{who}} cannot express layer {sub.name!r} ({type(sub).__name__}) of the policy "
                                f"torso {layer.name!r}: it supports Dense layers only {TORSO_HINT}")
            out.append(_dense(sub, f"policy torso {layer.name!r}"))
        return out
    raise PlanError(f"{{who}} cannot express layer {layer.name!r} ({type(layer).__name__}) of the policy: it "
                    f"supports Dense torsos only {TORSO_HINT}")


def _check_chain(layers: list[Dense], width: int) -> None:
    """Each layer must take what the one before gives (a functional torso must be a chain)."""
    for d in layers:
        if d.n_in != width:
            raise PlanError(f"{{who}} needs a chain of Dense layers; layer {d.name!r} takes {d.n_in} inputs but "
                            f"receives {width}")
        width = d.n_out


def _normalizer(layer: ObservationNormalizer) -> Normalizer:
    var = np.asarray(layer.var.numpy(), np.float32).reshape(-1)
    # TensorFlow's own float32 kernels, as the exporter's constant folding evaluates them.
    inv_std = np.asarray(keras.ops.reciprocal(keras.ops.sqrt(var + np.float32(layer.epsilon))), np.float32)
    return Normalizer(np.asarray(layer.mean.numpy(), np.float32).reshape(-1), var, float(layer.epsilon),
                      float(layer.clip), inv_std)


def _recurrent(layer: RecurrentCore) -> Recurrent:
    kernel, recurrent_kernel, bias = (np.asarray(w.numpy(), np.float32)
                                      for w in (layer.kernel, layer.recurrent_kernel, layer.bias))
    return Recurrent(layer.cell, int(layer.units), kernel, recurrent_kernel, bias)


def _obs_shape(model: keras.Model) -> tuple:
    """One observation's shape, from the model's ``obs`` input (after the time axis of a recurrent one)."""
    inputs = [layer for layer in model.layers if isinstance(layer, keras.layers.InputLayer)]
    obs = next((layer for layer in inputs if layer.name == "obs"), inputs[0])
    recurrent = any(isinstance(layer, RecurrentCore) for layer in model.layers)
    return tuple(obs.batch_shape[2 if recurrent else 1:])


def _single_input(model: keras.Model) -> tuple[list[ObsInput], set[str]]:
    """The one ``obs`` input (a Box vector, or a Discrete index) and the layers it accounts for."""
    one_hot = next((layer for layer in model.layers if isinstance(layer, OneHot)), None)
    normalizer = next((layer for layer in model.layers if isinstance(layer, ObservationNormalizer)), None)
    shape = _obs_shape(model)
    if one_hot is None and len(shape) != 1:
        raise PlanError(f"{{who}} takes flat observations; this policy's have shape {shape} (wrap the env in "
                        "gymnasium.wrappers.FlattenObservation and train on that)")
    used = {layer.name for layer in (one_hot, normalizer) if layer is not None}
    one = ObsInput("obs", 0, 1 if one_hot is not None else int(shape[0]),
                   one_hot=None if one_hot is None else int(one_hot.n),
                   normalizer=None if normalizer is None else _normalizer(normalizer))
    return [one], used


def _dict_inputs(model: keras.Model, layout: DictLayout) -> tuple[list[ObsInput], set[str]]:
    """One input per Dict key in sorted-key order (its own normaliser, or one-hot for a Discrete
    key) and the layers they account for."""
    by_name = {layer.name: layer for layer in model.layers}
    inputs, used = [], {f"{PREFIX}_obs_concat"}
    for e in layout.entries:
        one_hot = normalizer = None
        if e.kind == "discrete":
            layer = by_name.get(f"{PREFIX}_one_hot_{e.key}")
            if not isinstance(layer, OneHot):
                raise PlanError(f"the policy model has no one-hot layer '{PREFIX}_one_hot_{e.key}' for Discrete key "
                                f"{e.key!r}")
            one_hot = int(layer.n)
            used.add(layer.name)
        elif isinstance(by_name.get(normalizer_name(PREFIX, e.key)), ObservationNormalizer):
            normalizer = _normalizer(by_name[normalizer_name(PREFIX, e.key)])
            used.add(normalizer_name(PREFIX, e.key))
        inputs.append(ObsInput(e.key, e.start, e.stop - e.start, one_hot, normalizer))
    return inputs, used

"""The acting side in the training process: the Keras policy as a NumPy ``PolicyPlan``.

A ``tf.function`` call costs ~300 us here, more than a MuJoCo step, so for the common case
(optional normaliser or one-hot, a stack of Dense layers, a head) acting runs a NumPy copy of
the policy (``numpy_policy.NumpyPolicy``), refreshed after each update; the same plan is what
rollout workers receive. Any other torso (a CNN, ...) falls back to calling the Keras model,
which only the inline rollout backend can do.
"""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_trpo.distributions import Family
from keras_trpo.layers import ObservationNormalizer, OneHot, RecurrentCore, StateIndependentLogStd
from keras_trpo.numpy_policy import ACTIVATIONS, NumpyPolicy, PolicyPlan


def _dense_stack(layer: keras.layers.Layer) -> Optional[list[keras.layers.Dense]]:
    """The Dense layers of a torso made only of Dense layers, else None."""
    if isinstance(layer, keras.layers.Dense):
        return [layer]
    if isinstance(layer, keras.Sequential):
        out = []
        for sub in layer.layers:
            if not isinstance(sub, keras.layers.Dense):
                return None
            out.append(sub)
        return out
    return None


def _activation_name(dense: keras.layers.Dense) -> str:
    return getattr(dense.activation, "__name__", "")


def plan_from_model(model: keras.Model) -> Optional[PolicyPlan]:
    """The model's current weights as a ``PolicyPlan``, or None if it has layers NumPy cannot run."""
    if hasattr(model, "numpy_plan"):  # a model that makes its own (Dict observations: dict_networks)
        return model.numpy_plan()
    plan: PolicyPlan = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, ObservationNormalizer):
            mean, var = (w.numpy().astype(np.float64) for w in (layer.mean, layer.var))
            inv_std = (1.0 / np.sqrt(var + layer.epsilon)).astype(np.float32)
            plan.append(("normalize", mean.astype(np.float32), inv_std, np.float32(layer.clip)))
        elif isinstance(layer, OneHot):
            plan.append(("one_hot", int(layer.n)))
        elif isinstance(layer, RecurrentCore):
            plan.append(("recurrent", layer.cell, layer.units, layer.kernel.numpy(), layer.recurrent_kernel.numpy(),
                         layer.bias.numpy()))
        elif isinstance(layer, StateIndependentLogStd):
            plan.append(("log_std", layer.log_std.numpy()))
        elif layer.name in ("policy_logits", "policy_mean"):
            name = "logits" if layer.name == "policy_logits" else "mean"
            plan.append(("head", name, layer.kernel.numpy(), layer.bias.numpy()))
        else:
            stack = _dense_stack(layer)
            if stack is None or any(_activation_name(d) not in ACTIVATIONS for d in stack):
                return None
            plan.append(("dense", [(d.kernel.numpy(), d.bias.numpy(), _activation_name(d)) for d in stack]))
    return plan


class Actor:
    """Chooses actions for a batch of raw observations ``[B, *obs_shape]``.

    A recurrent policy's actor is always the NumPy copy (its network is Dense layers around the
    cell) and acts with ``act_recurrent``, which takes and returns the per-env state.
    """

    def __init__(self, policy_model: keras.Model, family: Family):
        self.family, self.policy_model = family, policy_model
        self.plan = plan_from_model(policy_model)
        inner = getattr(policy_model, "inner", policy_model)  # a Dict model's packed adapter holds the model
        if self.plan is None and any(isinstance(layer, RecurrentCore) for layer in inner.layers):
            raise ValueError("the recurrent policy has a layer the NumPy actor cannot run")
        if self.plan is None:
            fn = tf.function(lambda obs: policy_model(obs, training=False), reduce_retracing=True)
            self._params = lambda obs: {k: v.numpy() for k, v in fn(tf.convert_to_tensor(obs, tf.float32)).items()}
        else:
            self._params = NumpyPolicy(self.plan)

    @property
    def uses_numpy(self) -> bool:
        return self.plan is not None

    def sync(self) -> None:
        """Copy the current Keras weights (after an update or a load)."""
        if self.plan is not None:
            self.plan = plan_from_model(self.policy_model)
            self._params = NumpyPolicy(self.plan)

    def params(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return self._params(obs)

    @property
    def state_size(self) -> int:
        """The recurrent state's length; 0 for a feed-forward policy."""
        return self._params.state_size if isinstance(self._params, NumpyPolicy) else 0

    def act_recurrent(self, obs: np.ndarray, state: np.ndarray, starts: np.ndarray, rng: np.random.Generator,
                      deterministic: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Stored-form actions ``[B, ...]`` and the state after the step (``NumpyPolicy.step``)."""
        params, state = self._params.step(obs, state, starts)
        return (self.family.mode(params) if deterministic else self.family.sample(params, rng)), state

    def act(self, obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        """Stored-form actions ``[B, ...]`` (unclipped Gaussian samples, class indices)."""
        params = self._params(obs)
        return self.family.mode(params) if deterministic else self.family.sample(params, rng)

"""The acting side: policy parameters for a batch of observations, in NumPy when possible.

A ``tf.function`` call costs ~300 us here, more than a MuJoCo step, so for the
common case (optional normaliser or one-hot, a stack of Dense layers, a head)
the rollout runs a NumPy copy of the policy, refreshed after each update.
Any other torso (a CNN, ...) falls back to calling the Keras model.
"""
from __future__ import annotations

from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_trpo.distributions import Family
from keras_trpo.layers import ObservationNormalizer, OneHot, StateIndependentLogStd

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


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


class NumpyPolicy:
    """NumPy mirror of a policy model built by ``networks.build_policy_model``."""

    def __init__(self, model: keras.Model, plan: list):
        self.model, self.plan = model, plan
        self.sync()

    @classmethod
    def try_build(cls, model: keras.Model) -> Optional["NumpyPolicy"]:
        plan: list = []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, ObservationNormalizer):
                plan.append(("normalize", layer))
            elif isinstance(layer, OneHot):
                plan.append(("one_hot", layer))
            elif isinstance(layer, StateIndependentLogStd):
                plan.append(("log_std", layer))
            elif layer.name in ("policy_logits", "policy_mean"):
                plan.append(("head", layer))
            else:
                stack = _dense_stack(layer)
                if stack is None:
                    return None
                for d in stack:
                    act = getattr(d.activation, "__name__", "")
                    if act not in _ACTIVATIONS:
                        return None
                plan.append(("dense", stack))
        return cls(model, plan)

    def sync(self) -> None:
        """Copy the current Keras weights (after an update or a load)."""
        self.steps = []
        for kind, obj in self.plan:
            if kind == "normalize":
                mean, var = (w.numpy().astype(np.float64) for w in (obj.mean, obj.var))
                inv_std = (1.0 / np.sqrt(var + obj.epsilon)).astype(np.float32)
                self.steps.append((kind, (mean.astype(np.float32), inv_std, np.float32(obj.clip))))
            elif kind == "one_hot":
                self.steps.append((kind, obj.n))
            elif kind == "dense":
                self.steps.append((kind, [(d.kernel.numpy(), d.bias.numpy(), _ACTIVATIONS[d.activation.__name__]) for d in obj]))
            elif kind == "head":
                self.steps.append((kind, (obj.name, obj.kernel.numpy(), obj.bias.numpy())))
            else:
                self.steps.append((kind, obj.log_std.numpy()))

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        x = obs
        out: dict[str, np.ndarray] = {}
        for kind, p in self.steps:
            if kind == "normalize":
                mean, inv_std, clip = p
                x = np.clip((x - mean) * inv_std, -clip, clip)
            elif kind == "one_hot":
                x = np.eye(p, dtype=np.float32)[x.astype(np.int64).reshape(-1)]
            elif kind == "dense":
                for w, b, act in p:
                    x = act(x @ w + b)
            elif kind == "head":
                name, w, b = p
                out["logits" if name == "policy_logits" else "mean"] = x @ w + b
            else:
                out["log_std"] = p  # [d]: broadcasts against mean [B, d]; no per-step copy
        return out


class Actor:
    """Chooses actions for a batch of raw observations ``[B, *obs_shape]``."""

    def __init__(self, policy_model: keras.Model, family: Family):
        self.family = family
        self.numpy_policy = NumpyPolicy.try_build(policy_model)
        if self.numpy_policy is None:
            fn = tf.function(lambda obs: policy_model(obs, training=False), reduce_retracing=True)
            self._params = lambda obs: {k: v.numpy() for k, v in fn(tf.convert_to_tensor(obs, tf.float32)).items()}
        else:
            self._params = self.numpy_policy

    @property
    def uses_numpy(self) -> bool:
        return self.numpy_policy is not None

    def sync(self) -> None:
        if self.numpy_policy is not None:
            self.numpy_policy.sync()

    def params(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return self._params(obs)

    def act(self, obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        """Stored-form actions ``[B, ...]`` (unclipped Gaussian samples, class indices)."""
        params = self._params(obs)
        return self.family.mode(params) if deterministic else self.family.sample(params, rng)

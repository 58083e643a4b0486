"""The acting side in the training process: the Keras policy run as its NumPy ``PolicyPlan``.

A ``tf.function`` call costs ~300 us here, more than a MuJoCo step, so for the common case
(optional normaliser or one-hot, a stack of Dense layers, a head) acting runs the policy's plan
in NumPy (``keras_trpo.plan``), read again after each update; the same plan is what rollout
workers receive. Any other torso (a CNN, ...) falls back to calling the Keras model, which only
the inline rollout backend can do.
"""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_trpo.distributions import Family
from keras_trpo.layers import RecurrentCore
from keras_trpo.plan.activations import ACTIVATIONS
from keras_trpo.plan.description import PlanError, PolicyPlan
from keras_trpo.plan.keras_reader import read_plan
from keras_trpo.plan.numpy_policy import NumpyPolicy


def numpy_plan(model: keras.Model, family: Family) -> tuple[Optional[PolicyPlan], str]:
    """``(plan, "")`` if NumPy can run the policy, else ``(None, why not)``."""
    inner = getattr(model, "inner", model)  # a Dict model's packed adapter holds the model
    # A functional torso (a chain of Dense) has always acted through Keras here; the C export
    # renders it, but acting in NumPy would change such agents' training numbers.
    functional = [layer.name for layer in inner.layers if isinstance(layer, keras.Model)
                  and not isinstance(layer, keras.Sequential)]
    if functional:
        return None, f"the torso {functional[0]!r} is a functional model"
    try:
        plan = read_plan(model, family)
    except PlanError as e:
        return None, str(e)
    missing = sorted({d.activation for d in plan.layers if ACTIVATIONS[d.activation] is None})
    if missing:
        return None, f"activation {missing[0]!r} has no NumPy version"
    return plan, ""


class Actor:
    """Chooses actions for a batch of raw observations ``[B, *obs_shape]``.

    A recurrent policy's actor is always the NumPy plan (its network is Dense layers around the
    cell) and acts with ``act_recurrent``, which takes and returns the per-env state.
    """

    def __init__(self, policy_model: keras.Model, family: Family):
        self.family, self.policy_model = family, policy_model
        self.plan, why = numpy_plan(policy_model, family)
        inner = getattr(policy_model, "inner", policy_model)
        if self.plan is None and any(isinstance(layer, RecurrentCore) for layer in inner.layers):
            raise ValueError(f"the recurrent policy has a layer the NumPy actor cannot run: {why}")
        if self.plan is None:
            fn = tf.function(lambda obs: policy_model(obs, training=False), reduce_retracing=True, autograph=False)
            self._params = lambda obs: {k: v.numpy() for k, v in fn(tf.convert_to_tensor(obs, tf.float32)).items()}
        else:
            self._params = NumpyPolicy(self.plan)

    @property
    def uses_numpy(self) -> bool:
        return self.plan is not None

    def sync(self) -> None:
        """Read the current Keras weights (after an update or a load)."""
        if self.plan is not None:
            self.plan = read_plan(self.policy_model, self.family)
            self._params = NumpyPolicy(self.plan)

    def params(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return self._params(obs)

    @property
    def state_size(self) -> int:
        """The recurrent state's length; 0 for a feed-forward policy."""
        return self._params.state_size if isinstance(self._params, NumpyPolicy) else 0

    def act_recurrent(self, obs: np.ndarray, state: np.ndarray, starts: np.ndarray, rng: np.random.Generator,
                      deterministic: bool = False, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored-form actions ``[B, ...]`` and the state after the step (``NumpyPolicy.step``)."""
        params, state = self._params.step(obs, state, starts)
        return self._choose(params, rng, deterministic, mask), state

    def act(self, obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False,
            mask: Optional[np.ndarray] = None) -> np.ndarray:
        """Stored-form actions ``[B, ...]`` (unclipped Gaussian samples, class indices); ``mask``: bool
        ``[B, W]`` (checked) to act among the valid actions only."""
        return self._choose(self._params(obs), rng, deterministic, mask)

    def _choose(self, params: dict, rng: np.random.Generator, deterministic: bool, mask: Optional[np.ndarray]):
        if mask is None:
            return self.family.mode(params) if deterministic else self.family.sample(params, rng)
        return self.family.mode(params, mask) if deterministic else self.family.sample(params, rng, mask)

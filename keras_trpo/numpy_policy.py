"""The policy network in NumPy, from plain arrays: what rollout workers act with. No TensorFlow.

A ``PolicyPlan`` is a list of steps, each a tuple of a kind and NumPy arrays / numbers, so it
pickles and ``ray.put``s as it is:

- ``("normalize", mean [*obs], inv_std [*obs], clip)``: ``clip((x - mean) * inv_std)``
- ``("one_hot", n)``: integer observation -> one-hot ``[B, n]``
- ``("dense", [(kernel [i, o], bias [o], activation name), ...])``
- ``("head", output name, kernel, bias)``: ``"logits"`` or ``"mean"``
- ``("log_std", log_std [d])``: the state-independent log-std
- ``("dict_obs", [(start, stop, op), ...])``: packed Dict observation -> per-key features, concatenated
  (``dict_obs.dict_features``)

``actor.plan_from_model`` builds one from the Keras policy.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from keras_trpo.dict_obs import dict_features

PolicyPlan = list

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


def _affine(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    # einsum, not `x @ kernel`: BLAS picks its kernel by batch size, so row i of a batch of 2 and
    # the same row alone can differ in the last bit. einsum accumulates each output in the same
    # order whatever the batch, which keeps results identical however the envs are split.
    return np.einsum("...i,io->...o", x, kernel) + bias


class NumpyPolicy:
    """Distribution parameters for raw observations ``[B, *obs_shape]``, row by row exact."""

    def __init__(self, plan: PolicyPlan):
        self.plan = plan
        for step in plan:
            if step[0] == "dense":
                for _, _, activation in step[1]:
                    if activation not in ACTIVATIONS:
                        raise ValueError(f"activation {activation!r} has no NumPy version")

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        x = obs
        out: dict[str, np.ndarray] = {}
        for step in self.plan:
            kind = step[0]
            if kind == "normalize":
                _, mean, inv_std, clip = step
                x = np.clip((x - mean) * inv_std, -clip, clip)
            elif kind == "one_hot":
                x = np.eye(step[1], dtype=np.float32)[x.astype(np.int64).reshape(-1)]
            elif kind == "dense":
                for kernel, bias, activation in step[1]:
                    x = ACTIVATIONS[activation](_affine(x, kernel, bias))
            elif kind == "head":
                _, name, kernel, bias = step
                out[name] = _affine(x, kernel, bias)
            elif kind == "log_std":
                out["log_std"] = step[1]  # [d]: broadcasts against mean [B, d]; no per-step copy
            elif kind == "dict_obs":
                x = dict_features(x, step[1])
            else:
                raise ValueError(f"unknown policy plan step {kind!r}")
        return out

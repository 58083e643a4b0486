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
- ``("recurrent", cell, units, kernel, recurrent_kernel, bias)``: an LSTM or GRU step
  (``sequences.lstm_step`` / ``gru_step``); a plan with one is run by ``NumpyPolicy.step``, which
  takes and returns the per-env state

``actor.plan_from_model`` builds one from the Keras policy.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from keras_trpo.dict_obs import dict_features
from keras_trpo import sequences

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
    """Distribution parameters for raw observations ``[B, *obs_shape]``, row by row exact.

    A recurrent plan is run one step at a time with ``step(obs, state, starts)``; ``state_size``
    is its state's length (0 for a feed-forward plan).
    """

    def __init__(self, plan: PolicyPlan):
        self.plan = plan
        self.state_size = 0
        for step in plan:
            if step[0] == "dense":
                for _, _, activation in step[1]:
                    if activation not in ACTIVATIONS:
                        raise ValueError(f"activation {activation!r} has no NumPy version")
            elif step[0] == "recurrent":
                if step[1] not in sequences.STEPS:
                    raise ValueError(f"recurrent cell {step[1]!r} has no NumPy version")
                self.state_size = sequences.state_size(step[1], step[2])

    @property
    def recurrent(self) -> bool:
        return self.state_size > 0

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        if self.recurrent:
            raise ValueError("this policy is recurrent: call step(obs, state, starts), which carries the state")
        return self._run(obs, None)[0]

    def initial_state(self, batch: int) -> np.ndarray:
        """Zeros ``[batch, state_size]``: the state at an episode start."""
        return np.zeros((batch, self.state_size), np.float32)

    def step(self, obs: np.ndarray, state: np.ndarray, starts: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One step of a recurrent policy: ``obs [B, *obs_shape]``, ``state [B, S]`` (before the step),
        ``starts [B]`` bool (the state is zeroed first where true) -> (parameters, state after the step)."""
        return self._run(obs, sequences.reset(state, starts))

    def _run(self, obs: np.ndarray, state) -> tuple[dict[str, np.ndarray], np.ndarray]:
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
            elif kind == "recurrent":
                _, cell, units, kernel, recurrent_kernel, bias = step
                state = sequences.STEPS[cell](x, state, kernel, recurrent_kernel, bias)
                x = sequences.output_of(cell, state, units)
            else:
                raise ValueError(f"unknown policy plan step {kind!r}")
        return out, state

"""A ``PolicyPlan`` run in NumPy: what the training process and the rollout workers act with. No TensorFlow."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from keras_trpo import sequences
from keras_trpo.plan.activations import numpy_activation
from keras_trpo.plan.description import ObsInput, PolicyPlan


def _affine(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    # einsum, not `x @ kernel`: BLAS picks its kernel by batch size, so row i of a batch of 2 and
    # the same row alone can differ in the last bit. einsum accumulates each output in the same
    # order whatever the batch, which keeps results identical however the envs are split.
    return np.einsum("...i,io->...o", x, kernel) + bias


def _single_features(inp: ObsInput) -> Callable[[np.ndarray], np.ndarray]:
    """``obs [B, *obs]`` -> features, for a plan with one (non-Dict) input."""
    if inp.one_hot:
        n = inp.one_hot
        return lambda x: np.eye(n, dtype=np.float32)[x.astype(np.int64).reshape(-1)]
    if inp.normalizer is None:
        return lambda x: x
    norm = inp.normalizer
    # Multiplies by 1 / sqrt(var + eps) taken in float64 (not the Dict keys' float32 division):
    # what this actor has always computed, so training runs stay bit for bit as recorded.
    inv_std = (1.0 / np.sqrt(norm.var.astype(np.float64) + norm.epsilon)).astype(np.float32)
    mean, clip = norm.mean, np.float32(norm.clip)
    return lambda x: np.clip((x - mean) * inv_std, -clip, clip)


def _dict_part(inp: ObsInput) -> Callable[[np.ndarray], np.ndarray]:
    """Packed ``[B, width]`` -> this Dict key's features ``[B, width]``: divides by
    ``sqrt(var + eps)`` in float32 as ``ObservationNormalizer`` does, so the features equal the
    Keras model's bit for bit."""
    a, b = inp.start, inp.stop
    if inp.one_hot:
        n = inp.one_hot
        return lambda packed: np.eye(n, dtype=np.float32)[packed[:, a].astype(np.int64)]
    if inp.normalizer is None:
        return lambda packed: packed[:, a:b]
    norm = inp.normalizer
    std = np.sqrt(norm.var + np.float32(norm.epsilon))
    mean, clip = norm.mean, np.float32(norm.clip)
    return lambda packed: np.clip((packed[:, a:b] - mean) / std, -clip, clip)


def features_function(plan: PolicyPlan) -> Callable[[np.ndarray], np.ndarray]:
    """``obs [B, *obs]`` (a Dict's packed ``[B, width]``) -> the observation features ``[B, F]``."""
    if not plan.dict_obs:
        return _single_features(plan.inputs[0])
    parts = [_dict_part(inp) for inp in plan.inputs]
    if len(parts) == 1:
        return parts[0]
    return lambda packed: np.concatenate([part(packed) for part in parts], axis=1)


class NumpyPolicy:
    """Distribution parameters for raw observations ``[B, *obs_shape]`` (a Dict's packed
    ``[B, width]``), row by row exact.

    A recurrent plan is run one step at a time with ``step(obs, state, starts)``; ``state_size``
    is its state's length (0 for a feed-forward plan). ``ValueError`` if the plan has an
    activation or cell with no NumPy version.
    """

    def __init__(self, plan: PolicyPlan):
        self.plan = plan
        self._activations = [numpy_activation(d.activation) for d in plan.layers]
        if plan.recurrent is not None and plan.recurrent.cell not in sequences.STEPS:
            raise ValueError(f"recurrent cell {plan.recurrent.cell!r} has no NumPy version")
        self.state_size = plan.state_size
        self._features = features_function(plan)

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

    def _run(self, obs: np.ndarray, state: Optional[np.ndarray]) -> tuple[dict[str, np.ndarray], Optional[np.ndarray]]:
        plan = self.plan
        x = self._features(obs)
        core = plan.recurrent
        if core is not None:
            state = sequences.STEPS[core.cell](x, state, core.kernel, core.recurrent_kernel, core.bias)
            x = sequences.output_of(core.cell, state, core.units)
        for dense, activation in zip(plan.layers, self._activations):
            x = activation(_affine(x, dense.kernel, dense.bias))
        out = {plan.output: _affine(x, plan.head.kernel, plan.head.bias)}
        if plan.log_std is not None:
            out["log_std"] = plan.log_std  # [d]: broadcasts against mean [B, d]; no per-step copy
        return out, state

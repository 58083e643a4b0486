"""Recurrent policies in NumPy: the LSTM / GRU step and episode starts. No TensorFlow.

The cells follow Keras's ``LSTMCell`` and ``GRUCell`` (``reset_after=True``) exactly: the same
weight layout, gate order and activations (``layers.RecurrentCore`` computes the same in
TensorFlow), so a policy's Keras weights run here unchanged. A cell's state is one flat vector
per env: ``[h, c]`` (``2 * units``) for an LSTM, ``h`` (``units``) for a GRU; zeros at an
episode start. Every product is an ``einsum``, as in ``numpy_policy``: each env's row is
computed exactly as it would be alone, whatever the batch, so rollouts split across workers
give the same actions. How the update cuts a rollout into sequences: ``rollouts.buffer``.
"""
from __future__ import annotations

import numpy as np

CELLS = ("lstm", "gru")
GATES = {"lstm": 4, "gru": 3}


def state_size(cell: str, units: int) -> int:
    """Length of the flat state vector: ``2 * units`` (h, c) for an LSTM, ``units`` for a GRU."""
    return 2 * units if cell == "lstm" else units


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _mm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("bi,io->bo", x, w)  # row by row exact (see numpy_policy._affine)


def lstm_step(x: np.ndarray, state: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
              bias: np.ndarray) -> np.ndarray:
    """One LSTM step. ``x [B, F]``, ``state [B, 2u]`` = (h, c), ``kernel [F, 4u]``,
    ``recurrent_kernel [u, 4u]``, ``bias [4u]`` (gates i, f, c, o as Keras) -> new state ``[B, 2u]``."""
    u = recurrent_kernel.shape[0]
    h, c = state[:, :u], state[:, u:]
    z = _mm(x, kernel) + bias + _mm(h, recurrent_kernel)
    i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return np.concatenate([h, c], axis=1).astype(np.float32)


def gru_step(x: np.ndarray, state: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
             bias: np.ndarray) -> np.ndarray:
    """One GRU step (Keras's ``reset_after=True``). ``x [B, F]``, ``state [B, u]``, ``kernel [F, 3u]``,
    ``recurrent_kernel [u, 3u]``, ``bias [2, 3u]`` (input bias, recurrent bias; gates z, r, h) -> ``[B, u]``."""
    u = recurrent_kernel.shape[0]
    xz = _mm(x, kernel) + bias[0]
    hz = _mm(state, recurrent_kernel) + bias[1]
    z = _sigmoid(xz[:, :u] + hz[:, :u])
    r = _sigmoid(xz[:, u:2 * u] + hz[:, u:2 * u])
    hh = np.tanh(xz[:, 2 * u:] + r * hz[:, 2 * u:])
    return (z * state + (1.0 - z) * hh).astype(np.float32)


STEPS = {"lstm": lstm_step, "gru": gru_step}


def output_of(cell: str, state: np.ndarray, units: int) -> np.ndarray:
    """The cell's output (what the layers above see): ``h``, the first ``units`` entries of the state."""
    return state[:, :units]


def reset(state: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Zero the state ``[B, S]`` of every env whose episode starts now (``starts [B]`` bool)."""
    return np.where(np.asarray(starts, bool)[:, None], np.float32(0.0), state).astype(np.float32)


def episode_starts(first: np.ndarray, episode_end: np.ndarray) -> np.ndarray:
    """``[T, E]`` bool: step t of env e begins an episode. ``first [E]``: whether step 0 does
    (a fresh env, or the previous fragment's last step ended an episode); then step t does
    exactly when step t - 1 ended one."""
    starts = np.empty(episode_end.shape, bool)
    starts[0] = first
    starts[1:] = episode_end[:-1]
    return starts

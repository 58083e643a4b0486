"""Which actions an env's action mask forbade: the invalid-action count ``serving run`` reports.
NumPy only.

The mask is in sb3-contrib's layout (keras_trpo_serving/sampling.py): one entry per action for
Discrete, the sub-spaces' entries concatenated for MultiDiscrete, ``[may be 0, may be 1]`` per bit
for MultiBinary. An action is invalid when any entry it uses is 0: its class for Discrete, one of its
sub-actions for MultiDiscrete, one of its bits' values for MultiBinary.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def mask_columns(space: Any, actions: np.ndarray) -> np.ndarray:
    """The mask entry each part of each env action uses, int64 ``[B, parts]`` (one part for
    Discrete, k for MultiDiscrete, n bits for MultiBinary). ``space`` is a
    ``keras_trpo_serving.spaces.Space`` or a gymnasium space (read by ``type``/class name, ``n``,
    ``start``, ``nvec``); ``actions`` are ``[B, *space.shape]`` as the env takes them (``start``
    included)."""
    kind = getattr(space, "type", None) or type(space).__name__
    a = np.asarray(actions).astype(np.int64)
    rows = len(a)
    if kind == "Discrete":
        return a.reshape(rows, 1) - int(getattr(space, "start", 0) or 0)
    if kind == "MultiDiscrete":
        nvec = np.asarray(space.nvec).reshape(-1).astype(np.int64)
        start = getattr(space, "start", None)
        start = np.broadcast_to(np.asarray(0 if start is None else start), nvec.shape).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        return a.reshape(rows, -1) - start + offsets
    if kind == "MultiBinary":
        bits = a.reshape(rows, -1)
        return 2 * np.arange(bits.shape[1]) + bits
    raise ValueError(f"{kind} actions cannot be masked")


def forbidden(space: Any, actions: Any, mask: np.ndarray) -> np.ndarray:
    """bool ``[B]``: whether each env action in ``actions`` (``[B, *space.shape]``) was forbidden by
    its row of ``mask`` (bool ``[B, W]``, True = valid, as ``SamplingRule.check_mask`` returns it)."""
    mask = np.asarray(mask, bool)
    cols = mask_columns(space, np.asarray(actions).reshape((len(mask),) + tuple(getattr(space, "shape", ()) or ())))
    return ~np.take_along_axis(mask, cols, axis=1).all(axis=1)

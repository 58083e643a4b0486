"""A recurrent policy's state and episode starts, checked against the batch they go with. NumPy only.

The exported graph takes ``state_in`` float32 ``[B, S]`` and answers ``state_out``; it never resets
itself: at an episode start the caller passes zeros, which is what ``episode_start`` does here.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from keras_trpo_serving.errors import InvalidState

STATE_IN, STATE_OUT = "state_in", "state_out"  # a recurrent export's input and output


def check_state(state: Any, rows: int, size: int, single: bool) -> np.ndarray:
    """``state`` as float32 ``[rows, size]`` (a new array: zeros for None), or ``InvalidState``
    naming the problem. One observation takes ``[size]`` or ``[1, size]``; a batch ``[rows, size]``."""
    if state is None:
        return np.zeros((rows, size), np.float32)
    want = f"({size},) or (1, {size})" if single else f"({rows}, {size})"
    try:
        x = np.asarray(state)
    except (ValueError, TypeError):
        raise InvalidState(f"state is not a rectangular array; expected shape {want}") from None
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise InvalidState(f"state has dtype {x.dtype}; expected float32 numbers of shape {want}")
    if not (x.shape == (rows, size) or (single and x.shape == (size,))):
        what = "one observation" if single else f"a batch of {rows}"
        raise InvalidState(f"state has shape {x.shape}; {what} takes {want} (state_size {size})")
    x = np.array(x, np.float32).reshape(rows, size)  # a copy: episode starts zero rows of it
    if np.count_nonzero(np.isfinite(x)) != x.size:
        raise InvalidState("state contains NaN or inf (or a value beyond float32's range)")
    return x


def episode_starts(episode_start: Any, rows: int, single: bool) -> Optional[np.ndarray]:
    """The rows whose state restarts from zeros, as a bool ``[rows]`` mask (None: no row).

    A bool applies to every row; otherwise one bool (or 0/1) per row."""
    if episode_start is None:
        return None
    if isinstance(episode_start, (bool, np.bool_)):
        return np.full(rows, bool(episode_start)) if episode_start else None
    try:
        x = np.asarray(episode_start)
    except (ValueError, TypeError):
        x = np.asarray(None)
    if x.dtype.kind not in "biuf" or not np.all((x == 0) | (x == 1)):
        raise InvalidState(f"episode_start must be true/false (or 0/1) per observation, got {str(episode_start)[:100]}")
    if not (x.shape == (rows,) or (single and x.shape == ())):
        raise InvalidState(f"episode_start has shape {x.shape}; expected one per observation: ({rows},)"
                           + (" or a single bool" if single else ""))
    mask = np.broadcast_to(x.astype(bool), (rows,))
    return mask if mask.any() else None

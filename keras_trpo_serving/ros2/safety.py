"""What the node publishes is always a valid action: clipped to the action space's bounds, and the
configured safe action checked against that space when the node starts."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from keras_trpo_serving.spaces import Space


def clip_action(action: Any, space: Space) -> Any:
    """``action`` within ``space``: a Box's bounds (finite ones) as the Box's dtype; Discrete,
    MultiDiscrete and MultiBinary actions are returned as they are (the policy only makes valid ones)."""
    if space.type != "Box":
        return action
    return np.clip(action, space.low, space.high).astype(space.dtype, copy=False)


def checked_safe_action(values: Sequence[float], space: Space) -> Optional[np.ndarray]:
    """The ``safe_action`` parameter as an action of ``space`` (its shape and dtype), or None when empty.

    Raises:
      ValueError: the wrong number of values, or a value outside the space (a Box's bounds, a
        Discrete's or MultiDiscrete's range, a MultiBinary's 0/1), named.
    """
    if not values:
        return None
    flat = np.asarray(values, np.float64)
    size = int(np.prod(space.shape)) if space.shape else 1
    if flat.size != size:
        raise ValueError(f"safe_action has {flat.size} value(s); the {space.type} action space takes {size}")
    if space.type == "Box":
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        outside = np.flatnonzero((flat < low) | (flat > high))
        if outside.size:
            i = int(outside[0])
            raise ValueError(f"safe_action[{i}] = {flat[i]:g} is outside the action space's [{low[i]:g}, {high[i]:g}]")
        return flat.reshape(space.shape).astype(space.dtype)
    if np.any(flat != np.round(flat)):
        raise ValueError(f"safe_action {flat.tolist()} must be integers for a {space.type} action space")
    if space.type == "Discrete":
        lo, hi = int(space.start), int(space.start) + space.n - 1
    elif space.type == "MultiDiscrete":
        lo, hi = space.start.reshape(-1), space.start.reshape(-1) + space.nvec.reshape(-1) - 1
    else:  # MultiBinary
        lo, hi = 0, 1
    if np.any(flat < lo) or np.any(flat > hi):
        raise ValueError(f"safe_action {flat.tolist()} is outside the {space.type} action space "
                         f"(from {np.asarray(lo).tolist()} to {np.asarray(hi).tolist()})")
    action = flat.reshape(space.shape).astype(space.dtype)
    return np.int64(action) if space.type == "Discrete" else action

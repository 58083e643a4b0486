"""Which actions an env's action mask forbade: the invalid-action count ``serving run`` and the ROS 2
bridge report. NumPy only.

The rule is the sampling rule's (``SamplingRule.allowed`` in keras_trpo_serving/sampling.py, which the
agent's rollout and the export's verification count with too); this module only finds the rule for an
action space given as a ``keras_trpo_serving.spaces.Space`` or a gymnasium space.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from keras_trpo_serving.sampling import rule_for

_FAMILIES = {"Discrete": "categorical", "MultiDiscrete": "multi_categorical", "MultiBinary": "bernoulli"}


def forbidden(space: Any, actions: Any, mask: np.ndarray) -> np.ndarray:
    """bool ``[B]``: whether each env action in ``actions`` (``[B, *space.shape]``, ``start`` included) was
    forbidden by its row of ``mask`` (bool ``[B, W]``, True = valid, as ``SamplingRule.check_mask``
    returns it); an action with one forbidden sub-action or bit is forbidden. ``ValueError`` for a
    space whose actions cannot be masked."""
    kind = getattr(space, "type", None) or type(space).__name__
    if kind not in _FAMILIES:
        raise ValueError(f"{kind} actions cannot be masked")
    rule, mask = rule_for(_FAMILIES[kind], space), np.asarray(mask, bool)
    if mask.ndim != 2 or mask.shape[1] != rule.mask_width:
        raise ValueError(f"a mask for {kind} actions has {rule.mask_width} entries per row, got shape {mask.shape}")
    return ~rule.allowed(np.asarray(actions), mask)

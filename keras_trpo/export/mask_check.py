"""Which actions a mask forbade: the count of invalid actions a masked export's verification reports
(it must be 0). No TensorFlow.

This reads keras_trpo_serving/sampling.py's mask layouts (sb3-contrib's) the other way round: not
how a mask changes the logits (``SamplingRule.masked_logits``, the rule the files compute) but
whether a given env action is allowed, so it checks the files' actions independently of how they
were computed.
"""
from __future__ import annotations

import numpy as np

from keras_trpo_serving.sampling import SamplingRule


def invalid_rows(rule: SamplingRule, actions: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """bool ``[N]``: where env ``actions [N, ...]`` (as ``rule.to_env`` gives them) take an action
    ``mask`` (bool ``[N, W]``, True = valid) forbids: Discrete ``mask[a - start]``; MultiDiscrete
    sub-space i's entry ``offset_i + a_i - start_i``; MultiBinary bit i's entry ``2 i + bit``.
    An action outside the space counts as invalid."""
    mask = np.asarray(mask, bool).reshape(len(mask), -1)
    n = len(mask)
    a = np.asarray(actions).astype(np.int64).reshape(n, -1)
    family = rule.distribution
    if family == "categorical":
        index, sizes = a - rule.start, np.array([rule.n])
        offsets = np.zeros(1, np.int64)
    elif family == "multi_categorical":
        sizes = rule.nvec
        index = a - np.broadcast_to(np.asarray(rule.start, np.int64).reshape(-1), sizes.shape)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    elif family == "bernoulli":
        index, sizes = a, np.full(a.shape[1], 2)
        offsets = 2 * np.arange(a.shape[1])
    else:
        raise ValueError(f"{family} actions cannot be masked")
    outside = (index < 0) | (index >= sizes)
    column = offsets + np.clip(index, 0, sizes - 1)
    allowed = np.take_along_axis(mask, column, axis=1)
    return np.any(outside | ~allowed, axis=1)

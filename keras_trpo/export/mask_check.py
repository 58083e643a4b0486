"""Which of a file's actions a mask forbade: the count of invalid actions a masked export's
verification reports (it must be 0). No TensorFlow.

Whether an action is allowed is keras_trpo/rollouts/masks.py's ``allowed`` (the count training logs);
this module only turns the files' env actions (``start`` added, the space's shape) back into the
rule's stored form, and counts an action outside the space as forbidden too.
"""
from __future__ import annotations

import numpy as np

from keras_trpo.rollouts.masks import allowed
from keras_trpo_serving.sampling import SamplingRule


def invalid_rows(rule: SamplingRule, actions: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """bool ``[N]``: where env ``actions [N, ...]`` (as ``rule.to_env`` gives them) take an action
    ``mask`` (bool ``[N, W]``, True = valid) forbids, or one outside the action space."""
    mask = np.asarray(mask, bool).reshape(len(mask), -1)
    a = np.asarray(actions).astype(np.int64).reshape(len(mask), -1)
    if rule.distribution == "categorical":
        stored, sizes = a - rule.start, np.array([rule.n])
    elif rule.distribution == "multi_categorical":
        stored, sizes = a - np.asarray(rule.start, np.int64).reshape(-1), rule.nvec
    else:
        stored, sizes = a, np.full(a.shape[1], 2)
    outside = np.any((stored < 0) | (stored >= sizes), axis=1)
    inside = np.clip(stored, 0, sizes - 1)
    return outside | ~allowed(rule, inside if rule.distribution != "categorical" else inside[:, 0], mask)

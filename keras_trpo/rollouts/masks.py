"""Action masks in the rollout: the envs' masks checked per step, and which actions a mask forbade.
No TensorFlow.

The rule itself (layouts, ``check_mask``, masked sampling) is ``keras_trpo_serving.sampling``'s; where an
env's mask comes from is ``keras_trpo_serving.action_masks``'s. This module adds what the rollout and the
evaluation need on top: the envs' masks as one checked ``[n, W]`` array whose errors name the env and
the step, and the count of actions a mask forbade (``invalid_actions`` in the logs).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from keras_trpo_serving.errors import InvalidActionMask
from keras_trpo_serving.sampling import BernoulliRule, CategoricalRule, MultiCategoricalRule, SamplingRule


def check_env_masks(rule: SamplingRule, masks: Sequence[Any], first_env: int, when: str) -> Optional[np.ndarray]:
    """The masks of envs ``first_env ..`` for their current observations (``masks``: one per env, as the
    env gave it, None where it gave none) -> bool ``[n, mask_width]``, or None if no env gave one.

    ``InvalidActionMask`` naming the env and ``when`` (e.g. "after step 17") if an env gives none while
    others do, or gives one ``rule.check_mask`` refuses (wrong shape or values, nothing valid)."""
    missing = [i for i, m in enumerate(masks) if m is None]
    if len(missing) == len(masks):
        return None
    if missing:
        raise InvalidActionMask(f"env {first_env + missing[0]} gave no action mask {when}, while env "
                                f"{first_env + next(i for i, m in enumerate(masks) if m is not None)} did; every env "
                                "must give one (an action_masks() method or info['action_mask'])")
    if rule.mask_width is None:
        raise InvalidActionMask(f"the env gives action masks, but its {rule.distribution} actions cannot be "
                                "masked (masks are for Discrete, MultiDiscrete and MultiBinary action spaces)")
    out = np.empty((len(masks), rule.mask_width), bool)
    for i, m in enumerate(masks):
        try:
            out[i] = rule.check_mask(m, 1)[0]
        except InvalidActionMask as e:
            raise InvalidActionMask(f"env {first_env + i} gave an invalid action mask {when}: {_one_row(str(e))}") from None
    return out


def _one_row(message: str) -> str:
    """``check_mask``'s message about a one-row mask without its "action mask row 0" subject."""
    for prefix in ("action mask row 0: ", "action mask row 0 ", "action mask "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def allowed(rule: SamplingRule, actions: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """bool ``[B]``: whether each stored-form action (``[B]`` class indices, ``[B, k]`` MultiDiscrete
    indices or ``[B, n]`` bits) is one the mask ``[B, mask_width]`` allows; an action with one forbidden
    sub-action or bit is forbidden."""
    rows = np.arange(len(mask))[:, None]
    if isinstance(rule, CategoricalRule):
        return mask[rows[:, 0], np.asarray(actions).reshape(-1)]
    if isinstance(rule, MultiCategoricalRule):
        offsets = np.concatenate([[0], np.cumsum(rule.nvec)[:-1]]).astype(np.int64)
        return mask[rows, offsets + np.asarray(actions, np.int64).reshape(len(mask), -1)].all(axis=1)
    if isinstance(rule, BernoulliRule):
        bits = np.asarray(actions, np.int64).reshape(len(mask), -1)
        return mask[rows, 2 * np.arange(bits.shape[1]) + bits].all(axis=1)
    raise InvalidActionMask(f"{rule.distribution} actions cannot be masked")


def count_invalid(rule: SamplingRule, actions: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    """int64 ``[B]``: 1 where the mask forbade the action taken, 0 elsewhere (all 0 without a mask)."""
    if mask is None:
        return np.zeros(len(actions), np.int64)
    return (~allowed(rule, actions, mask)).astype(np.int64)

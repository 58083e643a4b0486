"""Where an environment's action mask comes from. NumPy only (gymnasium is read by duck typing).

Two conventions, and the one place that decides between them:

- an ``action_masks()`` method, sb3-contrib's (MaskablePPO, ``ActionMasker``), found through
  gymnasium's wrappers with ``get_wrapper_attr``;
- ``info["action_mask"]`` in what ``reset`` and ``step`` return, gymnasium's (``Taxi-v4``).

When an env has both, the method wins: it is what a user adds on purpose (often an ``ActionMasker``
wrapped around an env that already reports a mask in its info), and it answers for the state the
env is in now. The mask is that of the observation just returned, i.e. of the next action.

``MaskSource(env)`` is used by the agent's rollout and evaluation, the export's verification over
whole episodes and ``serving run``; the sampling rule (``keras_trpo_serving.sampling``) checks what it
returns (``check_mask``) and applies it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import numpy as np

METHOD, INFO = "action_masks()", 'info["action_mask"]'
INFO_KEY = "action_mask"


def mask_method(env: Any) -> Optional[Callable[[], Any]]:
    """The env's ``action_masks`` method, looked up through its wrappers, or None."""
    getter = getattr(env, "get_wrapper_attr", None)
    if callable(getter):
        try:
            method = getter("action_masks")
        except AttributeError:
            method = None
    else:
        method = getattr(env, "action_masks", None)
    return method if callable(method) else None


class MaskSource:
    """The action masks of one env: ``source(info)`` after each ``reset``/``step``.

    Attributes:
      kind: ``METHOD``, ``INFO`` or None: where masks come from (``INFO`` is decided from the first
        ``reset``'s info, so ``kind`` may be None until ``source(info)`` has been called once).
    """

    def __init__(self, env: Any):
        self._method = mask_method(env)
        self.kind: Optional[str] = METHOD if self._method is not None else None

    def __call__(self, info: Optional[Mapping[str, Any]]) -> Optional[np.ndarray]:
        """The current mask as the env gives it (not checked: see ``SamplingRule.check_mask``), or
        None if the env gives none."""
        if self._method is not None:
            return np.asarray(self._method())
        if isinstance(info, Mapping) and INFO_KEY in info:
            self.kind = INFO
            return np.asarray(info[INFO_KEY])
        return None


def has_masks(env: Any, info: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether an env gives action masks: an ``action_masks`` method, or ``info["action_mask"]`` in
    ``info`` (pass a ``reset``'s info)."""
    return mask_method(env) is not None or (isinstance(info, Mapping) and INFO_KEY in info)

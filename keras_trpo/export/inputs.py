"""The exported graph's inputs and the state outputs, by name, in NumPy: no TensorFlow.

- Observations: ``obs`` float32 ``[B, *obs_shape]`` for a Box or Discrete space; for a Dict space
  one input per key, named exactly the key, in sorted-key order: ``[B, d]`` for a Box entry,
  ``[B]`` (the index) for a Discrete entry, as the policy model's inputs take them.
- ``noise`` float32 ``[B, width]`` for a stochastic export (keras_trpo/export/noise.py).
- ``state_in`` float32 ``[B, S]`` for a recurrent policy (S = ``agent.state_size``: ``[h, c]``
  for an LSTM, ``h`` for a GRU); the graph returns ``state_out`` ``[B, S]``, the state after the
  step. The state at an episode start is zeros: the caller passes them, the graph does no reset.

A Dict key becomes a graph input name, so it must be a plain identifier and not one of the graph's
other input or output names.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from keras_trpo.export.errors import ExportError
from keras_trpo.export.noise import NOISE
from keras_trpo.dict_obs import layout_of

OBS = "obs"
STATE_IN, STATE_OUT = "state_in", "state_out"
# Every input and output name of the graph: a Dict key named like one of them would collide with it
# (tf2onnx then fails with "graph input 'action' not exist", which names no key).
RESERVED = (OBS, NOISE, STATE_IN, STATE_OUT, "action", "logits", "mean", "log_std", "sampled_action")
KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
STATE_RESET = "zeros at an episode start"  # the state_reset metadata value of a recurrent file


def is_recurrent(agent) -> bool:
    return bool(getattr(agent, "is_recurrent", False))


def recurrent_cell(agent) -> str:
    """``"lstm"`` or ``"gru"`` for a recurrent agent, ``""`` for a feed-forward one."""
    return str(agent.config.recurrent) if is_recurrent(agent) else ""


def state_size(agent) -> int:
    return int(agent.state_size) if is_recurrent(agent) else 0


def check_key_names(keys: Sequence[str]) -> None:
    """``ExportError`` naming the first Dict key that cannot be a graph input name."""
    for key in keys:
        if not KEY_PATTERN.match(key):
            raise ExportError(f"Dict observation key {key!r} cannot name a graph input: exported keys must match "
                              f"{KEY_PATTERN.pattern} (rename it, e.g. with a gymnasium ObservationWrapper)")
        if key in RESERVED:
            raise ExportError(f"Dict observation key {key!r} is the name of another graph input or output "
                              f"({', '.join(RESERVED)}): rename it, e.g. with a gymnasium ObservationWrapper")


def observation_names(agent) -> list[str]:
    """``["obs"]``, or a Dict space's keys in sorted order (checked: ``check_key_names``)."""
    layout = layout_of(agent.observation_space)
    if layout is None:
        return [OBS]
    check_key_names(layout.keys)
    return list(layout.keys)


def input_names(agent, stochastic: bool = False) -> list[str]:
    """The graph's inputs in order: observations, ``noise`` (stochastic), ``state_in`` (recurrent)."""
    return observation_names(agent) + ([NOISE] if stochastic else []) + ([STATE_IN] if is_recurrent(agent) else [])


def observation_feeds(agent, obs: np.ndarray) -> dict[str, np.ndarray]:
    """Packed observations ``[N, *obs_shape]`` (a Dict space's ``[N, width]``, as rollouts store
    them) -> ``{"obs": [N, *obs_shape]}`` or ``{key: [N, d] or [N]}``, float32 and contiguous."""
    layout = layout_of(agent.observation_space)
    obs = np.asarray(obs, np.float32)
    if layout is None:
        return {OBS: np.ascontiguousarray(obs)}
    return {k: np.ascontiguousarray(v) for k, v in layout.split(obs).items()}


def runner_input(agent, obs: np.ndarray, state: Optional[np.ndarray] = None):
    """What a runner takes for packed ``obs``: the array itself for a feed-forward ``obs`` graph (the
    runners' original form), else the feeds by input name (``state_in`` too, when given)."""
    if state is None and layout_of(agent.observation_space) is None:
        return np.asarray(obs, np.float32)
    feeds = observation_feeds(agent, obs)
    if state is not None:
        feeds[STATE_IN] = np.ascontiguousarray(state, np.float32)
    return feeds

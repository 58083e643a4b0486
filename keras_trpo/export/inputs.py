"""The exported graph's inputs and outputs by name, and running a file on them in batches.

- Observations: ``obs`` float32 ``[B, *obs_shape]`` for a Box or Discrete space; for a Dict space
  one input per key, named exactly the key, in sorted-key order: ``[B, d]`` for a Box entry,
  ``[B]`` (the index) for a Discrete entry, as the policy model's inputs take them.
- ``action_mask`` float32 ``[B, W]`` for a masked policy (1 = valid, 0 = invalid; the graph takes
  ``> 0.5`` as valid): keras_trpo_serving/sampling.py's layout and rule (``mask_width``,
  ``masked_logits``), applied to the deterministic and the sampled action alike.
- ``noise`` float32 ``[B, width]`` for a stochastic export (keras_trpo/export/noise.py).
- ``state_in`` float32 ``[B, S]`` for a recurrent policy (``[h, c]`` for an LSTM, ``h`` for a
  GRU); the graph returns ``state_out`` ``[B, S]``, the state after the step. The state at an
  episode start is zeros: the caller passes them, the graph does no reset.

Which of them a policy has, in which order, is its description's (``PolicyDescription.input_names``;
``PolicyDescription.feeds`` builds them from packed observations). A Dict key becomes a graph input
name, so it must be a plain identifier and not one of the graph's other input or output names.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

import numpy as np

from keras_trpo.export.errors import ExportError
from keras_trpo.export.noise import NOISE, SAMPLED_ACTION

OBS = "obs"
STATE_IN, STATE_OUT = "state_in", "state_out"
ACTION_MASK = "action_mask"
ACTION = "action"
# Every input and output name of the graph: a Dict key named like one of them would collide with it
# (tf2onnx then fails with "graph input 'action' not exist", which names no key).
RESERVED = (OBS, ACTION_MASK, NOISE, STATE_IN, STATE_OUT, ACTION, "logits", "mean", "log_std", SAMPLED_ACTION)
KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
STATE_RESET = "zeros at an episode start"  # the state_reset metadata value of a recurrent file
BATCH = 4096  # rows per call when a file is run on many observations

Feeds = Mapping[str, np.ndarray]  # the inputs by name, each [N, ...]
Runner = Callable[[Feeds], dict[str, np.ndarray]]  # a written file: inputs by name -> outputs by name


def check_key_names(keys: Sequence[str]) -> None:
    """``ExportError`` naming the first Dict key that cannot be a graph input name."""
    for key in keys:
        if not KEY_PATTERN.match(key):
            raise ExportError(f"Dict observation key {key!r} cannot name a graph input: exported keys must match "
                              f"{KEY_PATTERN.pattern} (rename it, e.g. with a gymnasium ObservationWrapper)")
        if key in RESERVED:
            raise ExportError(f"Dict observation key {key!r} is the name of another graph input or output "
                              f"({', '.join(RESERVED)}): rename it, e.g. with a gymnasium ObservationWrapper")


def rows(feeds: Feeds) -> int:
    """The batch size of ``feeds`` (every input has the same)."""
    return len(next(iter(feeds.values())))


def run_in_batches(fn: Runner, feeds: Feeds, batch: int = BATCH) -> dict[str, np.ndarray]:
    """``fn(feeds)`` over slices of ``batch`` rows of every input, concatenated."""
    parts = [fn({k: v[i: i + batch] for k, v in feeds.items()}) for i in range(0, rows(feeds), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

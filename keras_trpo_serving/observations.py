"""Observation checking, NumPy only: what every policy class (onnxruntime, LiteRT, C) does to
an observation before its runtime sees it. A plain observation is one float32 input ``obs``;
a Dict observation one input per key (sorted), each checked against its own space."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from keras_trpo_serving.errors import InvalidObservation, NonFiniteObservation, first_line, key_problems
from keras_trpo_serving.spaces import Space

_F32 = np.dtype(np.float32)
# Per observation input: (shape after the batch axis, the Discrete space or None, the name errors use).
InputSpec = tuple[tuple[int, ...], Optional[Space], str]


def input_specs(spaces: Mapping[str, Space], dict_obs: bool) -> dict[str, InputSpec]:
    """``ObservationChecks._in_specs`` for the observation inputs ``spaces`` (``{"obs": space}``,
    or one per key of a Dict observation, ``dict_obs``)."""
    return {name: (s.policy_input_shape, s if s.type == "Discrete" else None,
                   "observation" if name == "obs" and not dict_obs else f"observation {name!r}")
            for name, s in spaces.items()}


class ObservationChecks:
    """``check`` and the checks ``act``/``step`` run on an observation. A subclass sets
    ``obs_keys`` (the Dict observation's sorted keys, or None) and ``_in_specs`` (``input_specs``)."""

    obs_keys: Optional[tuple[str, ...]]
    _in_specs: dict[str, InputSpec]

    def _array(self, obs: Any, name: str) -> tuple[np.ndarray, bool]:
        """Observation input ``name`` as a float32 ``[B, *shape]`` array, and whether it was a single
        observation; errors name it ("observation", or "observation 'key'" for a Dict entry)."""
        shape, space, what = self._in_specs[name]
        if isinstance(obs, np.ndarray):
            x = obs
        else:
            try:
                x = np.asarray(obs)
            except (ValueError, TypeError) as e:  # ragged nested lists
                raise InvalidObservation(f"{what} is not a rectangular array ({first_line(e)}); "
                                         f"expected shape {shape} or (batch, *{shape})") from None
        if x.dtype != _F32:
            if x.dtype.kind not in "fiub":  # strings, objects, complex: no safe cast to float32
                raise InvalidObservation(f"{what} has dtype {x.dtype}; expected numbers "
                                         f"(cast to float32) of shape {shape}")
            x = x.astype(np.float32)
        if x.shape == shape:
            single = True
            x = x[None]
        elif x.ndim == len(shape) + 1 and x.shape[1:] == shape:
            single = False
        else:
            raise InvalidObservation(
                f"{what} has shape {x.shape}; expected {shape} for one observation "
                f"or (batch, {', '.join(map(str, shape))}) for a batch")
        # count_nonzero is a C loop; isfinite(x).all() goes through Python-level dispatch and
        # takes ~1.5x as long on the small arrays of a control loop.
        if np.count_nonzero(np.isfinite(x)) != x.size:
            raise NonFiniteObservation(f"{what} contains NaN or inf (or a value beyond float32's range); "
                                       f"expected finite numbers of shape {shape}")
        if space is not None:  # Discrete
            # The graph one-hot encodes the index: an out-of-range one would silently become zeros.
            lo, hi = int(space.start), int(space.start) + space.n - 1
            if x.size == 1:  # one index: plain floats, ~10x faster than three NumPy reductions
                v = float(x.flat[0])
                bad = v != int(v) or not lo <= v <= hi
            else:
                bad = x.size and (np.any(x != np.floor(x)) or x.min() < lo or x.max() > hi)
            if bad:
                raise InvalidObservation(f"Discrete {what} must be an integer in [{lo}, {hi}], got {x.ravel()[:8]}")
        return x, single

    def _inputs(self, obs: Any) -> tuple[dict[str, np.ndarray], int, bool]:
        """``obs`` checked: the graph's observation inputs, the number of rows, and whether it was one observation."""
        if self.obs_keys is None:
            x, single = self._array(obs, "obs")
            return {"obs": x}, len(x), single
        if not isinstance(obs, (dict, Mapping)):  # dict first: an ABC check costs more
            raise InvalidObservation(f"a Dict observation is a mapping of the keys {list(self.obs_keys)} to arrays, "
                                     f"got {type(obs).__name__}")
        if len(obs) != len(self.obs_keys) or not all(k in obs for k in self.obs_keys):
            raise InvalidObservation(f"Dict observation {key_problems(obs, self.obs_keys)}; expected exactly "
                                     f"{list(self.obs_keys)}")
        feed: dict[str, np.ndarray] = {}
        first = self.obs_keys[0]
        for key in self.obs_keys:
            feed[key], single = self._array(obs[key], key)
            if key == first:
                rows, one = len(feed[key]), single
            elif (single, len(feed[key])) != (one, rows):
                raise InvalidObservation(
                    f"observation {key!r} is {'one observation' if single else f'a batch of {len(feed[key])}'} "
                    f"but {first!r} is {'one observation' if one else f'a batch of {rows}'}")
        return feed, rows, one

    def check(self, obs: Any) -> tuple[Any, bool]:
        """``obs`` checked as ``act`` checks it: a float32 ``[B, *obs_shape]`` array (for a Dict
        observation, a dict of them, one per key), and whether it was one observation. Raises
        ``InvalidObservation`` (``NonFiniteObservation``) like ``act``. With ``one`` it splits
        ``act`` in two, for callers that compute several requests at once."""
        feed, _, single = self._inputs(obs)
        return (feed["obs"] if self.obs_keys is None else feed), single


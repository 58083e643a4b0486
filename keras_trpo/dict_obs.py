"""Dict observations on the NumPy side: the space's layout, packing, checks, statistics. No TensorFlow.

A ``gymnasium.spaces.Dict`` of Box (rank 1) and Discrete entries, the goal-conditioned layout
(``observation``, ``achieved_goal``, ``desired_goal``) that SB3's ``MultiInputPolicy`` takes.

Keys are always taken in sorted order. gymnasium's ``Dict`` sorts the keys of a plain ``dict``
(so ``sample()``, ``flatten`` and a vector env's batched observations use that order) and SB3's
``CombinedExtractor`` concatenates in the space's order, i.e. sorted; sorting here as well makes
the order independent of how the space was built (an ``OrderedDict`` keeps its own order).

Between the environments and the models an observation travels *packed*: one float32 vector of
``width`` columns, the keys' values side by side in sorted-key order, a Discrete entry as one
column holding its index. So there is one rollout path for every space (the same ``Fragment``,
the same transport to process and Ray workers, the same learner gathers); the models unpack it
into one named input per key (``dict_networks``), and each entry is normalised on its own there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np

from keras_trpo.running_stats import RunningMeanStd
from keras_trpo.space_errors import InvalidObservationError, UnsupportedSpaceError


@dataclass(frozen=True)
class Entry:
    """One key of the Dict: its columns ``[start, stop)`` of the packed vector.

    ``shape`` is what the model's input for the key takes per observation: ``(d,)`` for a Box,
    ``()`` for a Discrete (its index; ``n`` classes, one-hot inside the model).
    """

    key: str
    kind: str  # "box" or "discrete"
    shape: tuple[int, ...]
    start: int
    stop: int
    n: int = 0  # Discrete only


@dataclass(frozen=True)
class DictLayout:
    """Where each key of a Dict observation lives in the packed ``[..., width]`` float32 array."""

    entries: tuple[Entry, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    @property
    def width(self) -> int:
        return self.entries[-1].stop

    @property
    def box_entries(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == "box")

    # ---- packed -> per key
    def split(self, packed):
        """``[..., width]`` (NumPy or TensorFlow) -> ``{key: [..., d] or [...]}``: ``[B, width]`` for a
        feed-forward model, ``[B, T, width]`` for a recurrent one's sequences. Slicing the last axis
        only, so it runs on either (the learner calls it inside its ``tf.function``)."""
        return {e.key: packed[..., e.start:e.stop] if e.kind == "box" else packed[..., e.start] for e in self.entries}

    # ---- per key -> packed
    def pack(self, obs: Any, n: int, where: str = "an observation") -> np.ndarray:
        """Observations of ``n`` envs -> ``[n, width]`` float32.

        ``obs``: a list of ``n`` dicts (envs stepped one by one) or one dict of ``[n, ...]``
        arrays (a gymnasium VectorEnv). Raises ``InvalidObservationError`` naming the key if an
        entry is missing, has the wrong size, is not finite or is not a valid Discrete index.
        """
        out = np.empty((n, self.width), np.float32)
        batched = isinstance(obs, Mapping)
        if not batched and len(obs) != n:
            raise InvalidObservationError(f"expected {n} observations, got {len(obs)}")
        for e in self.entries:
            try:
                values = obs[e.key] if batched else [o[e.key] for o in obs]
            except (KeyError, TypeError, IndexError):
                raise InvalidObservationError(
                    f"the environment returned {where} without key {e.key!r} (the Dict space has keys {list(self.keys)})"
                ) from None
            col = np.asarray(values, np.float32)
            if col.size != n * (e.stop - e.start):
                raise InvalidObservationError(
                    f"the environment returned {where} whose {e.key!r} has {col.size // max(n, 1)} values; "
                    f"the space says shape {e.shape}")
            out[:, e.start:e.stop] = col.reshape(n, e.stop - e.start)
        self._check_values(out, f"the environment returned {where}")
        return out

    def check(self, obs: Any, where: str = "observation") -> tuple[np.ndarray, bool]:
        """A user's Dict observation, one or a batch -> ``(packed [B, width] float32, was_single)``.

        One observation: ``{key: array of the key's shape}``; a batch: ``{key: [B, *shape]}``
        with the same ``B`` for every key. Errors name the key.
        """
        if not isinstance(obs, Mapping):
            raise InvalidObservationError(
                f"{where} is a {type(obs).__name__}; this agent takes a dict with keys {list(self.keys)}")
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise InvalidObservationError(f"{where} is missing key {missing[0]!r} (expected keys {list(self.keys)})")
        extra = sorted(map(str, set(obs) - set(self.keys)))
        if extra:
            raise InvalidObservationError(f"{where} has unexpected key {extra[0]!r} (expected keys {list(self.keys)})")
        arrays, single, batch = {}, None, None
        for e in self.entries:
            arr = np.asarray(obs[e.key])
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
                raise InvalidObservationError(f"{where}[{e.key!r}] has dtype {arr.dtype}; expected numbers of shape {e.shape}")
            if arr.shape == e.shape:
                is_single, b = True, 1
            elif arr.ndim == len(e.shape) + 1 and arr.shape[1:] == e.shape:
                is_single, b = False, arr.shape[0]
            else:
                raise InvalidObservationError(
                    f"{where}[{e.key!r}] has shape {arr.shape}; expected {e.shape} (one observation) or "
                    f"(batch, {', '.join(map(str, e.shape))})")
            if single is None:
                single, batch = is_single, b
            elif (is_single, b) != (single, batch):
                raise InvalidObservationError(
                    f"{where}[{e.key!r}] has shape {arr.shape}, which does not match the other keys' "
                    f"{'single observation' if single else f'batch of {batch}'}")
            arrays[e.key] = arr.reshape(b, -1)
        packed = np.concatenate([arrays[e.key] for e in self.entries], axis=1).astype(np.float32)
        self._check_values(packed, where)
        return packed, bool(single)

    def _check_values(self, packed: np.ndarray, what: str) -> None:
        if not np.isfinite(packed).all():
            bad = next(e.key for e in self.entries if not np.isfinite(packed[:, e.start:e.stop]).all())
            raise InvalidObservationError(f"{what} with NaN or inf in {bad!r} (expected finite values)")
        for e in self.entries:
            if e.kind == "discrete":
                col = packed[:, e.start]
                if not (np.all(col == np.round(col)) and np.all((col >= 0) & (col < e.n))):
                    raise InvalidObservationError(
                        f"{what} whose {e.key!r} is not a Discrete({e.n}) value (an integer in 0..{e.n - 1})")


def check_dict_space(space: gym.spaces.Dict) -> DictLayout:
    """The layout of a supported Dict space, or ``UnsupportedSpaceError`` naming the offending key."""
    if not space.spaces:
        raise UnsupportedSpaceError("Dict observation space has no keys")
    entries, start = [], 0
    for key in sorted(space.spaces, key=str):
        sub = space.spaces[key]
        where = f"Dict observation space: key {key!r}"
        if not isinstance(key, str) or not key or "/" in key:
            # Each key names a Keras input (and an exported file's input), and Keras names cannot hold '/'.
            raise UnsupportedSpaceError(f"{where}: keys must be non-empty strings without '/'")
        if isinstance(sub, gym.spaces.Box):
            if len(sub.shape) != 1:
                raise UnsupportedSpaceError(
                    f"{where} is a Box of shape {sub.shape}; Dict entries must be vectors (rank 1). Flatten it "
                    "(gymnasium.wrappers.TransformObservation) or use a Box observation space with a CNN torso")
            if not np.issubdtype(sub.dtype, np.number):
                raise UnsupportedSpaceError(f"{where} is a Box with dtype {sub.dtype}, which is not numeric")
            d = int(sub.shape[0])
            entries.append(Entry(key, "box", (d,), start, start + d))
            start += d
        elif isinstance(sub, gym.spaces.Discrete):
            if int(sub.start) != 0:
                raise UnsupportedSpaceError(f"{where} is Discrete({sub.n}, start={sub.start}); Dict entries need start=0")
            entries.append(Entry(key, "discrete", (), start, start + 1, int(sub.n)))
            start += 1
        else:
            kind = "a nested Dict" if isinstance(sub, gym.spaces.Dict) else f"a {type(sub).__name__}"
            raise UnsupportedSpaceError(f"{where} is {kind}; Dict entries must be Box (rank 1) or Discrete")
    return DictLayout(tuple(entries))


class DictObsStats:
    """Running mean and variance per Box key (Discrete keys are one-hot, with no statistics).

    ``update`` takes packed ``[N, width]`` observations; ``stats[key]`` is that key's
    ``RunningMeanStd`` over its ``[d]`` values.
    """

    def __init__(self, layout: DictLayout):
        self.layout = layout
        self.per_key = {e.key: RunningMeanStd(e.shape) for e in layout.box_entries}

    def __getitem__(self, key: str) -> RunningMeanStd:
        return self.per_key[key]

    @property
    def count(self) -> float:
        # Every key is updated with every batch; with no Box key nothing is counted.
        return min((s.count for s in self.per_key.values()), default=0.0)

    def update(self, packed: np.ndarray) -> None:
        for e in self.layout.box_entries:
            self.per_key[e.key].update(packed[:, e.start:e.stop])

    def state(self) -> dict:
        return {"per_key": {k: s.state() for k, s in self.per_key.items()}}

    def load_state(self, state: dict) -> None:
        saved = state.get("per_key")
        if not isinstance(saved, dict) or set(saved) != set(self.per_key):
            raise ValueError(f"observation statistics are for keys {sorted(saved or [])}, expected {sorted(self.per_key)}")
        for k, s in saved.items():
            self.per_key[k].load_state(s)


class DictPackingGroup:
    """An env group (``envs.EnvList`` / ``VectorEnvGroup``) whose Dict observations come out packed."""

    def __init__(self, group: Any, layout: DictLayout):
        self.group, self.layout, self.num_envs = group, layout, group.num_envs

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        return self.layout.pack(self.group.reset(seeds), self.num_envs)

    def step(self, actions: np.ndarray):
        obs, rewards, terminated, truncated, final = self.group.step(actions)
        final = {i: self.layout.pack([o], 1, "a final observation")[0] for i, o in final.items()}
        return self.layout.pack(obs, self.num_envs), rewards, terminated, truncated, final

    def close(self) -> None:
        self.group.close()


def pack_dict_observations(group: Any, observation_space: gym.Space) -> Any:
    """``group`` itself, or for a Dict space the same envs with packed observations."""
    if isinstance(observation_space, gym.spaces.Dict):
        return DictPackingGroup(group, check_dict_space(observation_space))
    return group


def layout_of(space: gym.Space) -> Optional[DictLayout]:
    """The packed layout of a Dict space, None for any other space."""
    return check_dict_space(space) if isinstance(space, gym.spaces.Dict) else None

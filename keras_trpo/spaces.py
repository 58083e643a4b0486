"""Which gymnasium spaces keras_trpo handles, checks on observations, and JSON forms."""
from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np

from keras_trpo.dict_obs import check_dict_space
from keras_trpo.space_errors import InvalidObservationError, UnsupportedSpaceError


def check_observation_space(space: gym.Space) -> None:
    if isinstance(space, gym.spaces.Box):
        if not np.issubdtype(space.dtype, np.number):
            raise UnsupportedSpaceError(f"Box observation space with dtype {space.dtype} is not numeric")
        return
    if isinstance(space, gym.spaces.Discrete):
        return
    if isinstance(space, gym.spaces.Dict):
        check_dict_space(space)
        return
    raise UnsupportedSpaceError(
        f"observation space {type(space).__name__} ({space!r}) is not supported; keras_trpo supports "
        "Box, Discrete and Dict (of Box and Discrete) observations (wrap Tuple spaces with "
        "gymnasium.wrappers.FlattenObservation)"
    )


def obs_shape(space: gym.Space) -> tuple[int, ...]:
    """Shape of one observation as the policy model takes it (Discrete -> ``()``); for a Dict, ``(width,)``
    of the packed form that rollouts store (``dict_obs``: the models take one input per key)."""
    if isinstance(space, gym.spaces.Dict):
        return (check_dict_space(space).width,)
    return tuple(space.shape) if isinstance(space, gym.spaces.Box) else ()


def check_observations(obs: Any, space: gym.Space, where: str = "observation") -> tuple[np.ndarray, bool]:
    """Validate ``obs`` (one observation or a batch) against ``space``.

    Returns ``(batch as float32 [B, *shape], was_single)``; raises
    ``InvalidObservationError`` naming the expected shape otherwise. A Dict space takes a dict (one
    observation or a batch per key) and returns the packed batch (``dict_obs.DictLayout.check``).
    """
    if isinstance(space, gym.spaces.Dict):
        return check_dict_space(space).check(obs, where)
    shape = obs_shape(space)
    arr = np.asarray(obs)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidObservationError(f"{where} has dtype {arr.dtype}; expected numbers of shape {shape}")
    if arr.shape == shape:
        single = True
        arr = arr[None]
    elif arr.shape[1:] == shape and arr.ndim == len(shape) + 1:
        single = False
    else:
        raise InvalidObservationError(
            f"{where} has shape {arr.shape}; expected {shape} (one observation) or (batch, {', '.join(map(str, shape))})"
        )
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise InvalidObservationError(f"{where} contains NaN or inf (expected finite values of shape {shape})")
    return arr, single


def _jsonable_bounds(x: np.ndarray) -> list:
    flat = np.asarray(x, np.float64).reshape(-1)
    return [("inf" if v > 0 else "-inf") if np.isinf(v) else float(v) for v in flat]


def _bounds_from_json(values: list, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.asarray([float(v) for v in values], np.float64).reshape(shape).astype(dtype)


def space_to_json(space: gym.Space) -> dict:
    """A JSON-able description of a supported space (no pickle anywhere)."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(np.dtype(space.dtype)),
            "low": _jsonable_bounds(space.low),
            "high": _jsonable_bounds(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(), "start": np.asarray(space.start).tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(space.spaces[k]) for k in sorted(space.spaces)}}
    raise UnsupportedSpaceError(f"cannot describe space {space!r}")


def space_from_json(d: dict | str) -> gym.Space:
    if isinstance(d, str):
        d = json.loads(d)
    kind = d.get("type")
    if kind == "Box":
        shape, dtype = tuple(d["shape"]), np.dtype(d["dtype"])
        return gym.spaces.Box(_bounds_from_json(d["low"], shape, dtype), _bounds_from_json(d["high"], shape, dtype), shape, dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.asarray(d["nvec"]), start=np.asarray(d.get("start", 0)))
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(d["n"])
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_json(v) for k, v in sorted(d["spaces"].items())})
    raise UnsupportedSpaceError(f"unknown space description {d!r}")

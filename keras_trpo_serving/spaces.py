"""The metadata of a keras-trpo ONNX export, parsed and checked without gymnasium."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

from keras_trpo_serving.errors import ModelLoadError

REQUIRED_METADATA = ("observation_space", "action_space", "distribution")
# distribution -> (the action space it goes with, the graph outputs holding its parameters)
DISTRIBUTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "categorical": ("Discrete", ("logits",)),
    "multi_categorical": ("MultiDiscrete", ("logits",)),
    "bernoulli": ("MultiBinary", ("logits",)),
    "diag_gaussian": ("Box", ("mean", "log_std")),
}


def _bound(values: Any, shape: tuple[int, ...], missing: float) -> np.ndarray:
    """Box bounds: numbers, or "inf"/"-inf" strings (JSON has no infinity); null means unbounded."""
    flat = [missing if v is None else float(v) for v in np.ravel(np.asarray(values, dtype=object))]
    arr = np.asarray(flat, np.float64)
    if arr.size == 1 and math.prod(shape) != 1:
        arr = np.full(shape, arr[0])
    return arr.reshape(shape)


def _encode_bound(arr: np.ndarray) -> list:
    """The inverse of ``_bound``: strict JSON, infinities as the strings the export writes."""
    return [("inf" if x > 0 else "-inf") if math.isinf(x) else x for x in arr.reshape(-1).tolist()]


@dataclass(frozen=True)
class Space:
    """A Box, Discrete, MultiDiscrete or MultiBinary space as the export describes it."""

    type: str
    shape: tuple[int, ...]
    dtype: np.dtype
    low: Optional[np.ndarray] = None  # Box
    high: Optional[np.ndarray] = None  # Box
    n: Optional[int] = None  # Discrete, MultiBinary (number of bits)
    start: Optional[np.ndarray] = None  # Discrete (scalar), MultiDiscrete (per sub-space)
    nvec: Optional[np.ndarray] = None  # MultiDiscrete
    spaces: Optional[dict[str, "Space"]] = None  # Dict: its entries (Box or Discrete), in sorted-key order

    @classmethod
    def from_json(cls, text: str, what: str) -> "Space":
        """Parse the JSON the export writes; ``what`` names the metadata key in errors."""
        try:
            d = json.loads(text)
            kind = d["type"]
            if kind == "Dict":
                entries = d["spaces"]
                if not isinstance(entries, dict) or not entries:
                    raise ValueError("a Dict needs a non-empty object of spaces")
                # The export feeds one graph input per key, named by it, in sorted-key order.
                subs = {str(k): cls.from_json(json.dumps(entries[k]), f"{what}[{k!r}]") for k in sorted(entries)}
                bad = sorted(k for k, v in subs.items() if v.type not in ("Box", "Discrete"))
                if bad:
                    raise ValueError(f"entries {bad} are not Box or Discrete")
                return cls("Dict", (), np.dtype(np.float32), spaces=subs)
            if kind == "Box":
                shape = tuple(int(s) for s in d["shape"])
                low, high = _bound(d["low"], shape, -math.inf), _bound(d["high"], shape, math.inf)
                if np.any(low > high):
                    raise ValueError("low is above high")
                return cls("Box", shape, np.dtype(d.get("dtype", "float32")), low=low, high=high)
            if kind == "Discrete":
                n = int(d["n"])
                if n < 1:
                    raise ValueError(f"n={n}")
                return cls("Discrete", (), np.dtype(np.int64), n=n, start=np.int64(d.get("start", 0)))
            if kind == "MultiDiscrete":
                nvec = np.asarray(d["nvec"], np.int64)
                if nvec.size == 0 or np.any(nvec < 1):
                    raise ValueError(f"nvec={nvec.tolist()}")
                start = np.broadcast_to(np.asarray(d.get("start", 0), np.int64), nvec.shape).copy()
                return cls("MultiDiscrete", nvec.shape, np.dtype(np.int64), nvec=nvec, start=start)
            if kind == "MultiBinary":
                n = d["n"]
                shape = tuple(int(s) for s in n) if isinstance(n, list) else (int(n),)
                return cls("MultiBinary", shape, np.dtype(np.int8), n=math.prod(shape))
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"metadata {what!r} is not a valid space description ({e}): {text[:200]}") from e
        raise ModelLoadError(f"metadata {what!r} has unknown space type {kind!r}")

    def to_dict(self) -> dict:
        """JSON-safe (no NaN/Infinity tokens), in the export's own encoding."""
        if self.spaces is not None:
            return {"type": "Dict", "spaces": {k: v.to_dict() for k, v in self.spaces.items()}}
        d: dict = {"type": self.type, "shape": list(self.shape), "dtype": str(self.dtype)}
        if self.low is not None:
            d["low"], d["high"] = _encode_bound(self.low), _encode_bound(self.high)
        if self.n is not None:
            d["n"] = self.n
        if self.nvec is not None:
            d["nvec"] = self.nvec.tolist()
        if self.start is not None:
            d["start"] = np.asarray(self.start).tolist()
        return d

    @property
    def policy_input_shape(self) -> tuple[int, ...]:
        """Shape of one observation as the model takes it (Discrete -> ())."""
        return () if self.type == "Discrete" else self.shape


@dataclass(frozen=True)
class ExportMetadata:
    """What ``OnnxPolicy`` needs from the ONNX ``metadata_props``."""

    observation_space: Space
    action_space: Space
    distribution: str
    param_names: tuple[str, ...]  # graph outputs holding the distribution's parameters
    raw: dict[str, str]
    recurrent: str = ""  # "lstm" or "gru"; "" for a feed-forward policy
    state_size: int = 0  # floats of recurrent state per observation (state_in / state_out)

    def as_dict(self) -> dict[str, Any]:
        """All metadata_props (unknown keys kept), the spaces as dicts: what ``/v1/metadata`` serves."""
        out: dict[str, Any] = dict(self.raw)
        out["observation_space"] = self.observation_space.to_dict()
        out["action_space"] = self.action_space.to_dict()
        return out


def parse_metadata(props: Mapping[str, str], path: str) -> ExportMetadata:
    """Check and parse ``metadata_props``; ``path`` only goes into the error messages."""
    missing = [k for k in REQUIRED_METADATA if k not in props]
    if missing:
        raise ModelLoadError(f"{path!r} has no {', '.join(missing)} metadata: it was not exported by "
                             "keras-trpo's export (python -m keras_trpo.export ... --onnx FILE)")
    try:
        obs = Space.from_json(props["observation_space"], "observation_space")
        act = Space.from_json(props["action_space"], "action_space")
    except ModelLoadError as e:
        raise ModelLoadError(f"{path!r}: {e}") from e
    dist = props["distribution"]
    if dist not in DISTRIBUTIONS:
        raise ModelLoadError(f"{path!r}: unknown distribution {dist!r}; expected one of {sorted(DISTRIBUTIONS)}")
    space_type, params = DISTRIBUTIONS[dist]
    if act.type != space_type:
        raise ModelLoadError(f"{path!r}: distribution {dist!r} does not fit a {act.type} action space")
    if obs.type not in ("Box", "Discrete", "MultiBinary", "Dict"):
        raise ModelLoadError(f"{path!r}: observation space {obs.type} is not supported")
    recurrent, state_size = _recurrence(props, path)
    return ExportMetadata(obs, act, dist, params, dict(props), recurrent, state_size)


RECURRENT_KINDS = ("lstm", "gru")


def _recurrence(props: Mapping[str, str], path: str) -> tuple[str, int]:
    """``recurrent`` and ``state_size`` checked together: both set or neither (absent means feed-forward)."""
    kind = props.get("recurrent", "") or ""
    text = props.get("state_size", "") or "0"
    try:
        size = int(text)
    except ValueError:
        raise ModelLoadError(f"{path!r}: metadata state_size={text!r} is not a decimal integer") from None
    if kind and kind not in RECURRENT_KINDS:
        raise ModelLoadError(f"{path!r}: metadata recurrent={kind!r}; expected one of {list(RECURRENT_KINDS)} or empty")
    if bool(kind) != (size > 0) or size < 0:
        raise ModelLoadError(f"{path!r}: metadata recurrent={kind!r} with state_size={size}: a recurrent policy "
                             "needs a positive state_size, a feed-forward one none")
    return kind, size


def _same(a: Any, b: Any) -> bool:
    # Bounds as float32, what both sides store (the export writes a float32 Box's bounds exactly).
    return np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def space_mismatch(space: Space, other: Any) -> Optional[str]:
    """How a gymnasium space ``other`` differs from the export's ``space`` (type, shape, sizes,
    bounds, start), or None if it is the same space. Duck-typed: no gymnasium import."""
    kind = type(other).__name__
    if kind != space.type:
        return f"it is a {kind}, not a {space.type}"
    if kind == "Dict":
        theirs = dict(other.spaces)
        if sorted(theirs) != list(space.spaces):
            return f"its keys are {sorted(theirs)}, not {list(space.spaces)}"
        for key, mine in space.spaces.items():
            why = space_mismatch(mine, theirs[key])
            if why:
                return f"entry {key!r}: {why}"
        return None
    shape = tuple(getattr(other, "shape", None) or ())
    if shape != space.shape:
        return f"its shape is {list(shape)}, not {list(space.shape)}"
    if kind == "Discrete":
        n, start = int(other.n), int(getattr(other, "start", 0))
        if (n, start) != (space.n, int(space.start)):
            return f"it has n={n}, start={start}; the model's has n={space.n}, start={int(space.start)}"
    elif kind == "MultiDiscrete":
        nvec, start = np.asarray(other.nvec), np.asarray(getattr(other, "start", 0))
        if not (np.array_equal(nvec, space.nvec) and np.array_equal(np.broadcast_to(start, nvec.shape), space.start)):
            return (f"it has nvec={nvec.tolist()}, start={np.broadcast_to(start, nvec.shape).tolist()}; the model's "
                    f"has nvec={space.nvec.tolist()}, start={space.start.tolist()}")
    elif kind == "Box":
        for name, mine in (("low", space.low), ("high", space.high)):
            theirs = np.broadcast_to(np.asarray(getattr(other, name)), space.shape)
            if not _same(theirs, mine):
                return f"its {name} is {theirs.reshape(-1).tolist()[:8]}, the model's {mine.reshape(-1).tolist()[:8]}"
    return None

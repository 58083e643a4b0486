"""The spaces in a keras_trpo export's metadata, without gymnasium."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np

from serving.errors import ModelLoadError

DISTRIBUTIONS = ("categorical", "diag_gaussian", "multi_categorical", "bernoulli")
PARAMS = {"categorical": ("logits",), "multi_categorical": ("logits",), "bernoulli": ("logits",),
          "diag_gaussian": ("mean", "log_std")}


@dataclass(frozen=True)
class Space:
    """A Box, Discrete, MultiDiscrete or MultiBinary space as the export describes it."""

    type: str
    shape: tuple[int, ...]
    dtype: np.dtype
    low: Optional[np.ndarray] = None  # Box
    high: Optional[np.ndarray] = None  # Box
    n: Optional[int] = None  # Discrete, MultiBinary
    start: Optional[np.ndarray] = None  # Discrete, MultiDiscrete
    nvec: Optional[np.ndarray] = None  # MultiDiscrete

    @classmethod
    def from_json(cls, text: str, what: str) -> "Space":
        try:
            d = json.loads(text)
            kind = d["type"]
            if kind == "Box":
                shape = tuple(int(s) for s in d["shape"])
                bound = lambda v: np.asarray([float(x) for x in v], np.float64).reshape(shape)  # noqa: E731
                return cls("Box", shape, np.dtype(d["dtype"]), low=bound(d["low"]), high=bound(d["high"]))
            if kind == "Discrete":
                return cls("Discrete", (), np.dtype(np.int64), n=int(d["n"]), start=np.int64(d.get("start", 0)))
            if kind == "MultiDiscrete":
                nvec = np.asarray(d["nvec"], np.int64)
                return cls("MultiDiscrete", nvec.shape, np.dtype(np.int64), nvec=nvec,
                           start=np.broadcast_to(np.asarray(d.get("start", 0), np.int64), nvec.shape))
            if kind == "MultiBinary":
                n = d["n"]
                shape = tuple(n) if isinstance(n, list) else (int(n),)
                return cls("MultiBinary", shape, np.dtype(np.int8), n=int(np.prod(shape)))
        except (ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"metadata {what!r} is not a valid space description: {e}") from e
        raise ModelLoadError(f"metadata {what!r} has unknown space type {d.get('type')!r}")

    def to_dict(self) -> dict:
        d: dict = {"type": self.type, "shape": list(self.shape), "dtype": str(self.dtype)}
        for k in ("low", "high", "nvec", "start"):
            v = getattr(self, k)
            if v is not None:
                d[k] = np.asarray(v).tolist()
        if self.n is not None:
            d["n"] = self.n
        return d

    @property
    def policy_input_shape(self) -> tuple[int, ...]:
        """Shape of one observation as the model takes it (Discrete -> ())."""
        return () if self.type == "Discrete" else self.shape

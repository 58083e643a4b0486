"""Stochastic actions: the export's noise-in contract on serving's side. NumPy only.

The noise is float32 ``[batch, width]``: uniforms in [0, 1) for the categorical families (one per
logit), standard normals for a Gaussian (one per action dimension). A stochastic export
(``python -m keras_trpo.export ... --stochastic``; every C export) computes ``sampled_action`` from it in
the graph; for a file without that input, ``sample_from_params`` computes the same function of
the same noise here, from the file's distribution parameters:

- categorical: Gumbel-max, ``argmax(logits - log(-log(u + 1e-20) + 1e-20)) + start``, per
  categorical for MultiDiscrete;
- Bernoulli: ``1`` where ``log(u) - log(1 - u) < logit`` (``u < sigmoid(logit)``);
- Gaussian: ``clip(mean + exp(log_std) * z, low, high)``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from keras_trpo_serving.errors import InvalidNoise
from keras_trpo_serving.spaces import Space

UNIFORM, NORMAL = "uniform", "normal"
_EPS = np.float32(1e-20)


def noise_kind(distribution: str) -> str:
    return NORMAL if distribution == "diag_gaussian" else UNIFORM


def noise_width(space: Space) -> int:
    """Noise per observation: one uniform per logit, or one normal per Box dimension."""
    if space.type == "Discrete":
        return int(space.n)
    if space.type == "MultiDiscrete":
        return int(np.sum(space.nvec))
    return int(np.prod(space.shape)) if space.shape else 1


def draw_noise(rng: np.random.Generator, kind: str, rows: int, width: int) -> np.ndarray:
    """``[rows, width]`` float32 noise from ``rng``."""
    if kind == NORMAL:
        return rng.standard_normal((rows, width), dtype=np.float32)
    return rng.random((rows, width), dtype=np.float32)


def check_noise(noise: Any, rows: int, width: int, kind: str) -> np.ndarray:
    """``noise`` as float32 ``[rows, width]``, or ``InvalidNoise`` naming the problem: not
    numbers, the wrong shape (``[width]`` for one observation, ``[rows, width]`` for a batch;
    a batch of one takes either),
    NaN or inf, or uniforms outside [0, 1)."""
    want = f"({width},) or (1, {width})" if rows == 1 else f"({rows}, {width})"
    try:
        x = np.asarray(noise)
    except (ValueError, TypeError):
        raise InvalidNoise(f"noise is not a rectangular array; expected shape {want}") from None
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise InvalidNoise(f"noise has dtype {x.dtype}; expected float32 numbers of shape {want}")
    if not (x.shape == (rows, width) or (rows == 1 and x.shape == (width,))):
        raise InvalidNoise(f"noise has shape {x.shape}; expected {want} "
                           f"({'one per logit' if kind == UNIFORM else 'one per action dimension'})")
    x = x.astype(np.float32).reshape(rows, width)
    if np.count_nonzero(np.isfinite(x)) != x.size:
        raise InvalidNoise("noise contains NaN or inf (or a value beyond float32's range)")
    if kind == UNIFORM and x.size and (x.min() < 0 or x.max() >= 1):
        raise InvalidNoise(f"uniform noise must lie in [0, 1); got values from {float(x.min()):g} to {float(x.max()):g}")
    return x


def sample_from_params(distribution: str, space: Space, params: Sequence[np.ndarray], noise: np.ndarray) -> np.ndarray:
    """The contract's action from the distribution parameters (``[logits]`` or ``[mean, log_std]``,
    float32 ``[B, ...]``) and ``noise [B, width]``, in the dtype and shape ``act`` returns."""
    if distribution == "diag_gaussian":
        mean, log_std = params
        a = np.clip(mean + np.exp(log_std) * noise, space.low.reshape(-1), space.high.reshape(-1))
        return a.astype(space.dtype).reshape((-1,) + space.shape)
    logits = params[0]
    if distribution == "bernoulli":
        with np.errstate(divide="ignore"):  # log(0) = -inf: u = 0 is below every sigmoid
            return ((np.log(noise) - np.log(np.float32(1) - noise)) < logits).astype(np.int8).reshape((-1,) + space.shape)
    z = logits - np.log(-np.log(noise + _EPS) + _EPS)
    if distribution == "categorical":
        return np.argmax(z, axis=-1).astype(np.int64) + space.start
    bounds = np.cumsum(space.nvec.reshape(-1))[:-1]
    picks = [np.argmax(part, axis=-1) for part in np.split(z, bounds, axis=-1)]
    return (np.stack(picks, axis=-1) + space.start.reshape(-1)).astype(np.int64).reshape((-1,) + space.shape)


def parse_noise_metadata(text: Optional[str]) -> Optional[tuple[str, int]]:
    """The export's ``noise`` metadata (``{"distribution": "uniform", "shape": [4], ...}``) as
    ``(kind, width)``, or None if the file has none; ``ValueError`` if it is malformed."""
    if not text:
        return None
    import json

    d = json.loads(text)
    kind, shape = d["distribution"], d["shape"]
    if kind not in (UNIFORM, NORMAL) or not isinstance(shape, list) or len(shape) != 1 or int(shape[0]) < 1:
        raise ValueError(f"unknown noise {text[:200]}")
    return kind, int(shape[0])

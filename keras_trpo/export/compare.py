"""How two sets of policy outputs are compared: the one rule every check of an export uses. No TensorFlow.

Integer actions (Discrete, MultiDiscrete, MultiBinary: ``action``, ``sampled_action``) must be
equal. Every float output (the distribution parameters, Box actions, ``state_out``) must satisfy,
element by element,

    |file - agent| <= atol + rtol * scale,   scale = max |agent's value of that output| over all compared,

so the tolerance grows with the values compared, as float32 rounding does. The rounding of an
output is that of the sums it is made of, whose terms are as large as the network's values
anywhere, not as the element itself: after long training a recurrent policy's logits reach
hundreds, and a logit of 3 computed from terms of hundreds (measured: logits up to ~300 scaled
from a CartPoleNoVel-v1 LSTM) differs by 6e-5 between the one-step graph and the sequence model,
both correct. So ``scale`` is the largest magnitude of the output over every observation (every
step of every lane) compared, and an absolute 1e-5 alone would call both wrong. ``rtol = 1e-5``
is ~80 float32 ulps of that largest value: room for two runtimes that order and fuse the
arithmetic differently, and orders of magnitude below what a wrong weight, a missed state or a
wrong sampler changes (tests/test_export_tolerance.py).

A masked file's ``logits`` hold the rule's constants where the mask decides (``MASKED_LOGIT``,
``+-FORCED_LOGIT``: keras_trpo_serving/sampling.py): those entries must be equal, and are left out of
the scale, which stays that of the network's own logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional

import numpy as np

from keras_trpo.export.errors import ExportVerificationError
from keras_trpo.export.inputs import ACTION
from keras_trpo.export.noise import SAMPLED_ACTION
from keras_trpo_serving.sampling import FORCED_LOGIT, MASKED_LOGIT

INTEGER_OUTPUTS = (ACTION, SAMPLED_ACTION)  # integer for Discrete, MultiDiscrete and MultiBinary actions
MASK_CONSTANTS = (MASKED_LOGIT, FORCED_LOGIT, -FORCED_LOGIT)  # the logits a mask sets


def mask_constants(name: str, x: np.ndarray) -> np.ndarray:
    """bool, ``x``'s shape: the entries of output ``name`` that a mask set (masked ``logits`` only)."""
    if name != "logits":
        return np.zeros(np.shape(x), bool)
    return np.isin(np.asarray(x, np.float64), MASK_CONSTANTS)


@dataclass(frozen=True)
class Tolerance:
    """``|a - b| <= atol + rtol * scale`` with ``scale`` the largest ``|b|`` of the output (module doc)."""

    atol: float = 1e-5
    rtol: float = 1e-5

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * float(scale)

    def describe(self, scale: float, name: str) -> str:
        """``"1e-05 + 1e-05 x 503.1, the largest |logits| of the agent's"``, for messages."""
        return f"{self.atol:g} + {self.rtol:g} x {scale:.6g}, the largest |{name}| of the agent's"


FILE_TOLERANCE = Tolerance()  # a written file against the agent


@dataclass
class Difference:
    """The largest difference of float outputs: absolute (in the outputs' units) and as a fraction
    of its tolerance (<= 1 when everything is within it)."""

    absolute: float = 0.0
    of_tolerance: float = 0.0

    def update(self, other: "Difference") -> None:
        self.absolute = max(self.absolute, other.absolute)
        self.of_tolerance = max(self.of_tolerance, other.of_tolerance)


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1) if x.ndim else x.reshape(1, 1)


def output_scales(reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The largest magnitude of each float output: the ``scale`` of the rule (module doc), the
    entries a mask set left out."""
    def scale(k, v):
        v = np.abs(np.asarray(v, np.float64))
        v = v[~mask_constants(k, v)] if k == "logits" else v
        return float(np.max(v)) if v.size else 0.0
    return {k: scale(k, v) for k, v in reference.items() if np.issubdtype(np.asarray(v).dtype, np.floating)}


def _value(x: np.ndarray) -> str:
    return np.array2string(np.asarray(x), precision=7, threshold=8, separator=", ")


def compare_outputs(reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray], what: str, *,
                    discrete_actions: bool, tolerance: Tolerance = FILE_TOLERANCE,
                    row_label: Optional[Callable[[int], str]] = None, names: Optional[Iterable[str]] = None,
                    scales: Optional[Mapping[str, float]] = None,
                    error: type[Exception] = ExportVerificationError) -> Difference:
    """Compare ``outputs`` (of ``what``: a file, a graph) with ``reference`` (the agent's), each
    ``{name: [N, ...]}``, for every name of ``reference`` (or ``names``). ``scales``: each float
    output's scale (``output_scales`` of everything compared, when ``reference`` is a part of it,
    e.g. one step of episodes; default: of ``reference``). Raises ``error`` saying which output
    differs, at which row (``row_label(i)``, default ``"observation i"``), by how much and against
    what tolerance."""
    scales = output_scales(reference) if scales is None else scales
    label = row_label or (lambda i: f"observation {i}")
    worst = Difference()
    for name in names if names is not None else tuple(reference):
        ref = np.asarray(reference[name])
        if name not in outputs:
            raise error(f"{what}: output {name!r} is missing (it has {sorted(outputs)})")
        got = np.asarray(outputs[name])
        if got.shape != ref.shape:
            raise error(f"{what}: output {name!r} has shape {got.shape}; the agent's has {ref.shape}")
        if not ref.size:
            continue
        a, b = _rows(got), _rows(ref)
        if name in INTEGER_OUTPUTS and discrete_actions:
            bad = np.flatnonzero(np.any(a != b, axis=1))
            if bad.size:
                i = int(bad[0])
                logits = f" (its logits there {_value(reference['logits'][i])})" if "logits" in reference else ""
                raise error(f"{what}: {bad.size} of {len(b)} discrete {name.replace('_', ' ')}s differ from the "
                            f"agent's (integer actions must be equal); the first at {label(i)}: {_value(got[i])}, "
                            f"the agent's {_value(ref[i])}{logits}")
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        fixed = mask_constants(name, b)
        if fixed.any():  # set by the mask: equal, or beyond any tolerance
            diff = np.where(fixed, np.where(a == b, 0.0, np.inf), diff)
        scale = scales[name]
        limit = tolerance.limit(scale)
        row_diff = np.max(diff, axis=1)
        over = np.flatnonzero(~(row_diff <= limit))  # NaN counts as over
        if over.size:  # the first row beyond it (where a drift begins), and how many and how far the others are
            i, worst_row = int(over[0]), int(over[np.argmax(np.nan_to_num(row_diff[over], nan=np.inf))])
            j = int(np.nanargmax(diff[i])) if np.any(np.isfinite(diff[i])) else 0
            raise error(
                f"{what}: output {name!r} differs from the agent's at {label(i)}, element {j}: {a[i, j]:.9g}, the "
                f"agent's {b[i, j]:.9g}; |difference| {diff[i, j]:.3g} > tolerance {limit:.3g} "
                f"({tolerance.describe(scale, name)}); {over.size} of {len(b)} rows are beyond it, the farthest "
                f"by {row_diff[worst_row]:.3g} at {label(worst_row)}")
        worst.update(Difference(float(np.max(row_diff)), float(np.max(row_diff)) / limit))
    return worst

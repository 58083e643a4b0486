"""The sampling rule: how an action is drawn from a distribution's parameters and noise. NumPy only.

This module is the one place that defines it, per action family (``categorical`` for Discrete,
``multi_categorical`` for MultiDiscrete, ``bernoulli`` for MultiBinary, ``diag_gaussian`` for Box):
the noise's kind and width, the transform from uniforms to the family's noise, ``params + noise ->
action``, the mode, and the env encoding (``start`` offsets, clipping, dtypes). Its users: the agent's
rollout and ``predict`` (``keras_trpo.sampling``, ``keras_trpo.distributions``, whose tfp families
tests/test_sampling_rule.py checks against this rule), the export's noise contract and verification
(``keras_trpo.export.noise``), serving's runtimes, and the C export, whose ``NAME_sample_noise``
computes ``contract_action``'s formulas with ``GUMBEL_EPS`` and ``PAD_LOGIT`` below.

Two forms of noise:

- *contract noise*, float32 ``[B, noise_width]``: ``UNIFORM`` in [0, 1) for the categorical families
  (one per logit, laid out like the logits) or ``NORMAL`` standard normals for a Gaussian (one per
  action dimension). A device passes it to a stochastic export (the ``noise`` input), which returns
  ``contract_action(params, noise)`` as ``sampled_action``.
- *family noise*, ``[B, *noise_shape]``: what ``sample`` adds to or compares with the parameters.
  Gumbel noise for the categoricals (Gumbel-max: ``argmax(logits + g)`` is a categorical draw; for
  MultiDiscrete in the padded ``[k, max(nvec)]`` layout that ``padded_logits`` makes, so one argmax
  serves all k), logistic noise for Bernoulli (``g < logit``  <=>  ``u < sigmoid(logit)``: compared in
  logit space, so no exp per step), standard normals for a Gaussian (``mean + exp(log_std) * z``).

The agent and the contract apply the same rule with two precisions: the agent's rollout draws float64
noise (``draw``; ``agent_noise`` turns contract noise into exactly what ``draw`` makes from the same
uniforms), the exported graphs compute in float32 with the ops every format has (``contract_noise``).
For the Gumbel transform that is one formula in two dtypes; for the Bernoulli one the formulas differ
(``agent_logit_from_uniform``, ``contract_logit_from_uniform``). Both pick the same action but where
a parameter lies within rounding of the threshold (float32 ties).

Action masks: the three discrete families take an optional ``mask``, bool ``[B, mask_width]`` (True =
valid), in every action function. ``mask_width`` and the layout are sb3-contrib's: one entry per action
for Discrete, the sub-spaces' masks concatenated for MultiDiscrete, two per bit (``[may be 0, may be
1]``) for MultiBinary; Box actions cannot be masked. ``check_mask`` turns what a caller passes into
that array or raises ``InvalidActionMask`` naming the problem (shape, values, a row, sub-space or bit
with nothing valid). ``masked_logits`` is the masked distribution's parameters, the same in learning
and acting: an invalid action's logit becomes ``MASKED_LOGIT`` (probability exactly 0 after a softmax,
finite in log-probabilities, entropy and KL), a bit with one allowed value gets ``-+FORCED_LOGIT``.
``sample`` and ``mode`` act on those logits, and a forced bit is set from the mask whatever the noise
(the contract's float32 logistic noise is ``-inf`` at ``u = 0``, below any finite logit). An all-True
mask changes nothing, bit for bit.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Optional

import numpy as np

from keras_trpo_serving.errors import InvalidActionMask, InvalidNoise

UNIFORM, NORMAL = "uniform", "normal"  # the contract noise's kinds (the ``noise`` metadata's "distribution")
GUMBEL_EPS = 1e-20  # keeps both logs finite at u = 0 and as u -> 1 (float32 and float64 alike)
PAD_LOGIT = -1e9  # MultiDiscrete's padding: probability exactly 0 after softmax, finite in KL / entropy
AGENT_LOG_EPS = 1e-300  # the agent's log(u + eps) at u = 0 (float64 only: it is 0 in float32)
MASKED_LOGIT = PAD_LOGIT  # an invalid action's logit: the same reasoning as the padding's
FORCED_LOGIT = -PAD_LOGIT  # a MultiBinary bit that must be 1 (its negative: must be 0)

Params = Mapping[str, np.ndarray]
Mask = Optional[np.ndarray]  # bool [B, mask_width], True = valid; None = every action valid


# ----------------------------------------------------------------------------- noise transforms
def gumbel_from_uniform(u: np.ndarray) -> np.ndarray:
    """Standard Gumbel noise from uniforms in [0, 1), any shape, in ``u``'s dtype:
    ``-log(-log(u + eps) + eps)``. The agent computes it in float64 and the contract in float32."""
    u = np.asarray(u)
    eps = u.dtype.type(GUMBEL_EPS)
    return -np.log(-np.log(u + eps) + eps)


def agent_logit_from_uniform(u: np.ndarray) -> np.ndarray:
    """The agent's standard logistic noise (the logit of ``u``), float64, any shape:
    ``log(u + 1e-300) - log1p(-u)``; log1p keeps the digits of ``1 - u`` for small u, and the
    1e-300 keeps ``u = 0`` (which ``Generator.random`` can return) finite.

    ``contract_logit_from_uniform`` is the device's version. In exact arithmetic both are
    ``log(u / (1 - u))``, and ``noise < logit`` is then ``u < sigmoid(logit)``; in floating point they
    differ by rounding only, so they pick the same bit except where the logit lies within float32
    rounding of ``logit(u)`` (and at ``u = 0`` for logits below -690): a boundary of measure zero in
    the limit, which tests/test_sampling_rule.py checks on many draws."""
    u = np.asarray(u, np.float64)
    return np.log(u + AGENT_LOG_EPS) - np.log1p(-u)


def contract_logit_from_uniform(u: np.ndarray) -> np.ndarray:
    """The contract's logistic noise, float32, any shape: ``log(u) - log(1 - u)``, the formula the
    exported graphs and the C sampler compute (neither ONNX nor TFLite has log1p, and 1e-300 is 0 in
    float32). ``u = 0`` gives ``-inf``, below every logit: the bit is 1, as ``u < sigmoid(logit)``
    says. See ``agent_logit_from_uniform`` for why the two differ and where they agree."""
    u = np.asarray(u, np.float32)
    with np.errstate(divide="ignore"):  # log(0) = -inf on purpose
        return np.log(u) - np.log(np.float32(1) - u)


# ----------------------------------------------------------------------------- the families
class SamplingRule:
    """One action family's rule. ``params`` are dicts of ``[B, ...]`` arrays (the policy head's
    outputs, ``param_names``); ``log_std`` may also be unbatched ``[d]``.

    Attributes:
      distribution: the family's name, as the export's metadata writes it.
      param_names: the parameters, the batched one first.
      noise_kind, noise_width: the contract noise per observation (``UNIFORM`` or ``NORMAL``, floats).
      noise_shape: the family noise per observation, in ``sample``'s layout.
    """

    distribution: str
    param_names: tuple[str, ...] = ("logits",)
    noise_kind: str = UNIFORM
    noise_width: int
    noise_shape: tuple[int, ...]

    @property
    def param_sizes(self) -> dict[str, int]:
        """Each parameter's width per observation (the policy head's sizes): one logit per value or
        bit, or one mean and one log-std per dimension, as many as the contract noise has."""
        return {name: self.noise_width for name in self.param_names}

    # --- the agent's noise (float64)
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Family noise for ``n`` actions from ``rng``, float64 ``[n, *noise_shape]``: what the agent's
        rollout draws per environment from that environment's own generator, with every
        transcendental function applied here, so results do not depend on how environments are grouped
        (SIMD and scalar code paths never see different batch shapes)."""
        return self._agent_transform(rng.random((n,) + self.noise_shape))

    def agent_noise(self, noise: np.ndarray) -> np.ndarray:
        """Contract noise ``[B, noise_width]`` -> the family noise ``draw`` makes from the same
        uniforms (or normals), float64 ``[B, *noise_shape]``."""
        return self._layout(self._agent_transform(np.asarray(noise, np.float64)))

    def contract_noise(self, noise: np.ndarray) -> np.ndarray:
        """Contract noise ``[B, noise_width]`` -> family noise ``[B, *noise_shape]``, float32, as the
        exported graphs compute it."""
        return self._layout(self._contract_transform(np.asarray(noise, np.float32)))

    def _agent_transform(self, u: np.ndarray) -> np.ndarray:
        return gumbel_from_uniform(u)

    def _contract_transform(self, u: np.ndarray) -> np.ndarray:
        return gumbel_from_uniform(u)

    def _layout(self, g: np.ndarray) -> np.ndarray:
        """Family noise in the contract's flat layout ``[B, noise_width]`` -> ``[B, *noise_shape]``."""
        return g

    # --- action masks
    mask_width: Optional[int] = None  # entries per observation; None: this family cannot be masked
    mask_layout: str = ""  # how the entries map to actions, for error messages and metadata

    def check_mask(self, mask: Any, rows: int) -> np.ndarray:
        """``mask`` as bool ``[rows, mask_width]``, or ``InvalidActionMask`` naming the problem: a family
        that cannot be masked, not numbers, the wrong shape (``[mask_width]`` for one observation,
        ``[rows, mask_width]`` for a batch; a batch of one takes either), values other than 0/1
        (False/True), or a row with nothing valid (``_check_valid``)."""
        if self.mask_width is None:
            raise InvalidActionMask(f"{self.distribution} actions cannot be masked (action masks are for Discrete, "
                                    "MultiDiscrete and MultiBinary action spaces)")
        width = self.mask_width
        want = f"({width},) or (1, {width})" if rows == 1 else f"({rows}, {width})"
        try:
            x = np.asarray(mask)
        except (ValueError, TypeError):
            raise InvalidActionMask(f"action mask is not a rectangular array; expected shape {want}") from None
        if x.dtype.kind not in "biuf":
            raise InvalidActionMask(f"action mask has dtype {x.dtype}; expected 0/1 or booleans of shape {want}")
        if not (x.shape == (rows, width) or (rows == 1 and x.shape == (width,))):
            raise InvalidActionMask(f"action mask has shape {x.shape}; expected {want} ({self.mask_layout})")
        x = x.reshape(rows, width)
        if x.dtype != np.bool_:
            bad = (x != 0) & (x != 1)  # NaN is != both
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise InvalidActionMask(f"action mask entries must be 0 or 1; row {r}, entry {c} is {x[r, c].item()!r}")
            x = x == 1
        self._check_valid(x)
        return x

    def _check_valid(self, mask: np.ndarray) -> None:
        """``InvalidActionMask`` if a row of bool ``[B, mask_width]`` leaves no valid action."""
        empty = ~mask.any(axis=-1)
        if empty.any():
            raise InvalidActionMask(f"action mask row {int(np.flatnonzero(empty)[0])} has no valid action "
                                    f"(all {self.mask_width} entries are 0)")

    def masked_logits(self, logits: np.ndarray, mask: Mask) -> np.ndarray:
        """The masked distribution's logits, ``logits``' shape and dtype: invalid actions get
        ``MASKED_LOGIT``. ``mask`` None (or all True) returns ``logits`` unchanged."""
        if mask is None:
            return logits
        return np.where(mask, logits, np.asarray(MASKED_LOGIT, logits.dtype))

    def masked_params(self, params: Params, mask: Mask) -> Params:
        """``params`` with the masked logits (``masked_logits``)."""
        if mask is None:
            return params
        return {**params, "logits": self.masked_logits(params["logits"], mask)}

    def all_valid(self, rows: int) -> np.ndarray:
        """The mask that allows everything, bool ``[rows, mask_width]``."""
        return np.ones((rows, self.mask_width), bool)

    def mask_columns(self, env_actions: np.ndarray) -> np.ndarray:
        """int64 ``[B, parts]``: the mask entry each part of each env action (``[B, *space.shape]``, as
        ``to_env`` makes them) uses: its class, each sub-action, each bit's value."""
        raise InvalidActionMask(f"{self.distribution} actions cannot be masked")

    def allowed(self, env_actions: Any, mask: np.ndarray) -> np.ndarray:
        """bool ``[B]``: whether the mask (bool ``[B, mask_width]``) allowed each env action; an action
        with one forbidden sub-action or bit is forbidden. What every invalid-action count counts."""
        mask = np.asarray(mask, bool)
        return np.take_along_axis(mask, self.mask_columns(np.asarray(env_actions)), axis=1).all(axis=1)

    # --- actions
    def sample(self, params: Params, noise: np.ndarray, mask: Mask = None) -> np.ndarray:
        """Stored-form actions ``[B, ...]`` from ``params``, family noise ``[B, *noise_shape]`` and an
        optional mask (bool ``[B, mask_width]``, as ``check_mask`` returns it), with exact operations
        only (add, multiply, compare, argmax, select)."""
        raise NotImplementedError

    def mode(self, params: Params, mask: Mask = None) -> np.ndarray:
        """The most probable stored-form actions ``[B, ...]`` (among the valid ones)."""
        raise NotImplementedError

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Stored-form actions ``[B, ...]`` -> what ``env.step`` takes, ``[B, *space.shape]``."""
        raise NotImplementedError

    def agent_action(self, params: Params, noise: np.ndarray, mask: Mask = None) -> np.ndarray:
        """The agent's env action for contract noise ``[B, noise_width]`` (its float64 rule)."""
        return self.to_env(self.sample(params, self.agent_noise(noise), mask))

    def contract_action(self, params: Params, noise: np.ndarray, mask: Mask = None) -> np.ndarray:
        """The contract's env action for float32 ``params`` and contract noise ``[B, noise_width]``:
        what a stochastic export returns as ``sampled_action`` (float32 arithmetic)."""
        return self.to_env(self.sample(params, self.contract_noise(noise), mask))


class CategoricalRule(SamplingRule):
    """Discrete(n, start): Gumbel-max over ``n`` logits with ``n`` uniforms,
    ``argmax(logits - log(-log(u + eps) + eps))``; stored as int32 class indices, ``start`` added for
    the env (int64)."""

    distribution = "categorical"

    def __init__(self, n: int, start: int = 0):
        self.n, self.start = int(n), int(start)
        self.noise_width = self.n
        self.noise_shape = (self.n,)
        self.mask_width = self.n
        self.mask_layout = f"one entry per action, {self.n} in all, 1 = valid"

    def scores(self, params: Params, mask: Mask = None) -> np.ndarray:
        """``[B, n]``: what the action is the argmax of (plus Gumbel noise when sampled)."""
        return self.masked_logits(params["logits"], mask)

    def sample(self, params, noise, mask=None):
        return np.argmax(self.scores(params, mask) + noise, axis=-1).astype(np.int32)

    def mode(self, params, mask=None):
        return np.argmax(self.scores(params, mask), axis=-1).astype(np.int32)

    def to_env(self, actions):
        return actions.astype(np.int64) + self.start

    def mask_columns(self, env_actions):
        return env_actions.astype(np.int64).reshape(-1, 1) - self.start


class MultiCategoricalRule(SamplingRule):
    """MultiDiscrete(nvec, start): independent categoricals, logits concatenated ``[B, sum(nvec)]``,
    one uniform per logit; Gumbel-max within each. Stored as int32 ``[B, k]`` indices.

    The logits are padded to ``[B, k, max(nvec)]`` with ``PAD_LOGIT`` (pad noise 0) so one argmax serves
    all k. A pad cell never wins: a real cell's Gumbel noise is at least ``-log(-log(eps))``, about
    -3.83, and its logit far above -1e9, so the padded argmax is the argmax within each categorical
    that the exported graphs and the C sampler compute on the flat layout."""

    distribution = "multi_categorical"

    def __init__(self, nvec: Any, start: Any = 0, shape: Optional[tuple[int, ...]] = None):
        self.nvec = np.asarray(nvec).reshape(-1).astype(np.int64)
        self.start = np.asarray(start).reshape(-1)
        self.shape = tuple(shape) if shape is not None else (len(self.nvec),)
        total, width = int(self.nvec.sum()), int(self.nvec.max())
        index = np.full((len(self.nvec), width), total, np.int64)  # `total` is the pad column
        offset = 0
        for i, n in enumerate(self.nvec):
            index[i, :n] = np.arange(offset, offset + n)
            offset += n
        self.index = index  # flat column of each padded cell
        self.noise_width = total
        self.noise_shape = index.shape
        self.mask_width = total
        self.mask_layout = (f"the {len(self.nvec)} sub-spaces' masks concatenated, {total} entries for nvec "
                            f"{self.nvec.tolist()}, 1 = valid")
        self._offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]]).astype(np.int64)

    def _check_valid(self, mask):
        per_space = np.add.reduceat(mask.astype(np.int64), self._offsets, axis=-1)  # [B, k] valid counts
        if (per_space == 0).any():
            r, i = np.argwhere(per_space == 0)[0]
            a = int(self._offsets[i])
            raise InvalidActionMask(f"action mask row {r}: sub-space {i} (entries {a}..{a + int(self.nvec[i]) - 1}) "
                                    "has no valid action")

    def padded_logits(self, logits: np.ndarray) -> np.ndarray:
        """``[B, sum(nvec)] -> [B, k, max(nvec)]``, pad cells ``PAD_LOGIT`` in the logits' dtype."""
        pad = np.full(logits.shape[:-1] + (1,), PAD_LOGIT, logits.dtype)
        return np.concatenate([logits, pad], -1)[..., self.index]

    def _layout(self, g):
        pad = np.zeros(g.shape[:-1] + (1,), g.dtype)  # pad cells hold PAD_LOGIT: their noise is irrelevant
        return np.concatenate([g, pad], -1)[..., self.index]

    def scores(self, params: Params, mask: Mask = None) -> np.ndarray:
        """``[B, k, max(nvec)]``: what each categorical's action is the argmax of (masked on the flat
        layout, then padded)."""
        return self.padded_logits(self.masked_logits(params["logits"], mask))

    def sample(self, params, noise, mask=None):
        return np.argmax(self.scores(params, mask) + noise, -1).astype(np.int32)

    def mode(self, params, mask=None):
        return np.argmax(self.scores(params, mask), -1).astype(np.int32)

    def to_env(self, actions):
        return (actions.astype(np.int64) + self.start).reshape((-1,) + self.shape)

    def mask_columns(self, env_actions):
        return env_actions.astype(np.int64).reshape(-1, len(self.nvec)) - self.start.astype(np.int64) + self._offsets


class BernoulliRule(SamplingRule):
    """MultiBinary(shape): one uniform per bit; the bit is ``noise < logit`` with logistic noise
    (``u < sigmoid(logit)``). Stored as int32 ``[B, n]``, the space's dtype and shape for the env."""

    distribution = "bernoulli"

    def __init__(self, shape: tuple[int, ...], dtype: Any = np.int8):
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.noise_width = math.prod(self.shape)
        self.noise_shape = (self.noise_width,)
        self.mask_width = 2 * self.noise_width
        self.mask_layout = (f"two entries per bit, [may be 0, may be 1], {self.mask_width} in all for "
                            f"{self.noise_width} bits, 1 = allowed")

    def _check_valid(self, mask):
        neither = ~mask.reshape(len(mask), -1, 2).any(-1)  # [B, n]
        if neither.any():
            r, i = np.argwhere(neither)[0]
            raise InvalidActionMask(f"action mask row {r}: bit {i} (entries {2 * i} and {2 * i + 1}) allows neither 0 nor 1")

    def forced(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """bool ``[B, n]`` pairs ``(must be 1, must be 0)`` of a mask ``[B, 2n]``."""
        pairs = mask.reshape(len(mask), -1, 2)
        return pairs[..., 1] & ~pairs[..., 0], pairs[..., 0] & ~pairs[..., 1]

    def masked_logits(self, logits, mask):
        """A bit that must be 1 gets ``FORCED_LOGIT``, one that must be 0 ``-FORCED_LOGIT``."""
        if mask is None:
            return logits
        one, zero = self.forced(mask)
        big = np.asarray(FORCED_LOGIT, logits.dtype)
        return np.where(one, big, np.where(zero, -big, logits))

    def _force(self, bits: np.ndarray, mask: Mask) -> np.ndarray:
        if mask is None:
            return bits
        one, zero = self.forced(mask)
        return np.where(one, 1, np.where(zero, 0, bits)).astype(np.int32)

    def _agent_transform(self, u):
        return agent_logit_from_uniform(u)

    def _contract_transform(self, u):
        return contract_logit_from_uniform(u)

    def scores(self, params: Params, mask: Mask = None) -> np.ndarray:
        """``[B, n]``: each bit is 1 where its noise is below its score (when sampled) or 0 is."""
        return self.masked_logits(params["logits"], mask)

    def sample(self, params, noise, mask=None):
        return self._force((noise < self.scores(params, mask)).astype(np.int32), mask)

    def mode(self, params, mask=None):
        return self._force((self.scores(params, mask) > 0).astype(np.int32), mask)

    def to_env(self, actions):
        return actions.astype(self.dtype).reshape((-1,) + self.shape)

    def mask_columns(self, env_actions):
        bits = env_actions.astype(np.int64).reshape(-1, self.noise_width)
        return 2 * np.arange(self.noise_width) + bits


class GaussianRule(SamplingRule):
    """Box(low, high): a diagonal Gaussian, one standard normal per dimension,
    ``mean + exp(log_std) * z``. Stored as the unclipped float32 sample (so log-probs are exact);
    clipped to the bounds (in float64) and cast to the space's dtype only for the env."""

    distribution = "diag_gaussian"
    param_names = ("mean", "log_std")
    noise_kind = NORMAL

    def __init__(self, low: Any, high: Any, shape: tuple[int, ...], dtype: Any = np.float32):
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.dim = math.prod(self.shape)
        self.low = np.asarray(low, np.float64).reshape(-1)
        self.high = np.asarray(high, np.float64).reshape(-1)
        self.noise_width = self.dim
        self.noise_shape = (self.dim,)

    def draw(self, rng, n):
        return rng.standard_normal((n,) + self.noise_shape)

    def _agent_transform(self, z):
        return z

    def _contract_transform(self, z):
        return z

    def sample(self, params, noise, mask=None):
        if mask is not None:
            self.check_mask(mask, len(noise))  # raises: Box actions cannot be masked
        return (params["mean"] + np.exp(params["log_std"]) * noise).astype(np.float32)

    def mode(self, params, mask=None):
        if mask is not None:
            self.check_mask(mask, len(params["mean"]))
        return np.asarray(params["mean"], np.float32)

    def to_env(self, actions):
        return np.clip(actions, self.low, self.high).astype(self.dtype).reshape((-1,) + self.shape)


RULES: dict[str, type[SamplingRule]] = {r.distribution: r for r in
                                        (CategoricalRule, MultiCategoricalRule, BernoulliRule, GaussianRule)}


def rule_for(distribution: str, space: Any) -> SamplingRule:
    """The rule of ``distribution`` for an action space: a gymnasium space or
    ``keras_trpo_serving.spaces.Space`` (read by attribute: ``n``/``start`` for Discrete, ``nvec``/
    ``start``/``shape`` for MultiDiscrete, ``shape``/``dtype`` for MultiBinary, ``low``/``high``/
    ``shape``/``dtype`` for Box). ``ValueError`` for an unknown distribution."""
    if distribution == "categorical":
        return CategoricalRule(space.n, getattr(space, "start", 0))
    if distribution == "multi_categorical":
        start = getattr(space, "start", None)
        return MultiCategoricalRule(space.nvec, 0 if start is None else start, space.shape)
    if distribution == "bernoulli":
        return BernoulliRule(space.shape, space.dtype)
    if distribution == "diag_gaussian":
        return GaussianRule(space.low, space.high, space.shape, space.dtype)
    raise ValueError(f"unknown distribution {distribution!r}; expected one of {sorted(RULES)}")


# ----------------------------------------------------------------------------- the contract noise
def draw_noise(rng: np.random.Generator, kind: str, rows: int, width: int) -> np.ndarray:
    """``[rows, width]`` float32 contract noise from ``rng``, as a device draws it."""
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


def noise_metadata(kind: str, width: int) -> str:
    """The export's ``noise`` metadata value, JSON: ``{"distribution": "uniform", "shape": [4],
    "dtype": "float32"}`` (one observation's noise; the input is ``[batch, *shape]``)."""
    return json.dumps({"distribution": kind, "shape": [int(width)], "dtype": "float32"})


def parse_noise_metadata(text: Optional[str]) -> Optional[tuple[str, int]]:
    """The export's ``noise`` metadata (``noise_metadata``'s JSON) as ``(kind, width)``, or None if the
    file has none; ``ValueError`` if it is malformed."""
    if not text:
        return None
    d = json.loads(text)
    kind, shape = d["distribution"], d["shape"]
    if kind not in (UNIFORM, NORMAL) or not isinstance(shape, list) or len(shape) != 1 or int(shape[0]) < 1:
        raise ValueError(f"unknown noise {text[:200]}")
    return kind, int(shape[0])


# ----------------------------------------------------------------------------- the mask input
def mask_metadata(rule: SamplingRule) -> str:
    """The export's ``action_mask`` metadata value, JSON: ``{"shape": [6], "dtype": "float32",
    "valid": 1, "invalid": 0, "layout": "..."}`` (one observation's mask; the input is
    ``[batch, *shape]``). ``ValueError`` for a family that cannot be masked."""
    if rule.mask_width is None:
        raise ValueError(f"{rule.distribution} actions cannot be masked")
    return json.dumps({"shape": [int(rule.mask_width)], "dtype": "float32", "valid": 1, "invalid": 0,
                       "layout": rule.mask_layout})


def parse_mask_metadata(text: Optional[str]) -> Optional[int]:
    """The width of an export's ``action_mask`` metadata (``mask_metadata``'s JSON), or None if the file
    has no mask input; ``ValueError`` if it is malformed."""
    if not text:
        return None
    d = json.loads(text)
    shape = d.get("shape")
    if not isinstance(shape, list) or len(shape) != 1 or int(shape[0]) < 1 or d.get("dtype") != "float32":
        raise ValueError(f"unknown action_mask metadata {text[:200]}")
    return int(shape[0])

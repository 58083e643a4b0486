"""The plan: what each part of the policy computes, as NumPy arrays. No TensorFlow.

A ``PolicyPlan`` is read once from the Keras policy model (``keras_reader.read_plan``); the NumPy
actor runs it (``numpy_policy.NumpyPolicy``) and the C export renders it (``keras_trpo.export.c_source``).
The computation, for one packed observation row ``x [obs_size]``:

1. features: per input in order (``obs``, or a Dict's keys in sorted order), its slice
   ``x[start:stop]`` one-hot encoded, normalised and clipped, or as it is; side by side ``[features]``;
2. a recurrent plan: one LSTM / GRU step from the state; the layers above see its ``h`` ``[units]``;
3. ``layers``: ``activation(x @ kernel + bias)`` each;
4. ``head``: linear, to the logits ``[k]`` or the mean ``[d]``; a Gaussian's ``log_std [d]`` beside it;
5. the action family's sampling rule (``keras_trpo_serving.sampling``) takes them from there.

Everything is plain dataclasses of arrays, numbers and strings: it pickles (rollout worker
processes) and ``ray.put``s as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from keras_trpo_serving.sampling import SamplingRule

# The recurrent cells a plan may hold: gates per unit, in Keras's order (LSTMCell: i, f, c, o;
# GRUCell(reset_after=True): z, r, h).
CELL_GATES = {"lstm": 4, "gru": 3}
# The head's layer name in the policy model -> the parameter it gives.
HEAD_OUTPUTS = {"policy_logits": "logits", "policy_mean": "mean"}


class PlanError(ValueError):
    """The policy has a part a plan cannot express; the message names the first such layer.

    ``str(error)`` says it of the plan; ``error.said_by("the C export")`` says it of a consumer
    whose scope is the plan's (the text holds ``{who}`` where the subject goes).
    """

    def __init__(self, text: str):
        self.text = text
        super().__init__(self.said_by("the policy plan"))

    def said_by(self, who: str) -> str:
        return self.text.replace("{who}", who)


@dataclass(frozen=True, eq=False)
class Normalizer:
    """``clip((x - mean) / sqrt(var + epsilon), -clip, clip)``, an ``ObservationNormalizer`` layer.

    ``mean [d]``, ``var [d]`` float32 as the layer holds them. ``inv_std [d]`` float32 is
    ``1 / sqrt(var + epsilon)`` by TensorFlow's float32 kernels: the constant the exported graphs
    fold the division into (TensorFlow's reciprocal is not always NumPy's correctly rounded one),
    so ``(x - mean) * inv_std`` is the exported files' arithmetic.
    """

    mean: np.ndarray
    var: np.ndarray
    epsilon: float
    clip: float
    inv_std: np.ndarray


@dataclass(frozen=True, eq=False)
class ObsInput:
    """One observation input: ``obs`` of a Box or Discrete space, or one key of a Dict.

    Its floats are ``x[start:start + size]`` of the packed observation (``size`` 1 for a
    Discrete index). ``one_hot``: n for a Discrete input (one-hot of the index), else None.
    ``normalizer``: a Box input's, or None (the values pass as they are).
    """

    key: str
    start: int
    size: int
    one_hot: Optional[int] = None
    normalizer: Optional[Normalizer] = None

    @property
    def stop(self) -> int:
        return self.start + self.size

    @property
    def width(self) -> int:
        """Features this input contributes to the concatenation."""
        return self.one_hot or self.size


@dataclass(frozen=True, eq=False)
class Dense:
    """``y = activation(x @ kernel + bias)``: ``kernel [n_in, n_out]``, ``bias [n_out]`` float32;
    ``activation`` a name of ``activations.ACTIVATIONS``; ``name`` the Keras layer's."""

    kernel: np.ndarray
    bias: np.ndarray
    activation: str
    name: str

    @property
    def n_in(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.kernel.shape[1])


@dataclass(frozen=True, eq=False)
class Recurrent:
    """An LSTM or GRU core as ``layers.RecurrentCore`` holds it (Keras's ``LSTMCell`` /
    ``GRUCell(reset_after=True)`` weights, gates i, f, c, o or z, r, h).

    ``kernel [F, G u]``, ``recurrent_kernel [u, G u]``, ``bias [G u]`` (LSTM) or ``[2, G u]`` (GRU:
    input bias then recurrent bias), float32. The state is one flat vector: ``[h, c]`` (``2 u``
    floats) for an LSTM, ``h`` (``u``) for a GRU; zeros at an episode start.
    """

    cell: str  # "lstm" or "gru"
    units: int
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray

    @property
    def gates(self) -> int:
        return CELL_GATES[self.cell]

    @property
    def n_in(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def state_size(self) -> int:
        return 2 * self.units if self.cell == "lstm" else self.units


@dataclass(frozen=True, eq=False)
class PolicyPlan:
    """Everything the policy computes, as arrays (see the module's docstring for the order).

    ``inputs``: the observation inputs, whose features are concatenated in this order;
    ``dict_obs``: whether they are a Dict's keys (sorted). ``recurrent``: the core, or None.
    ``layers``: the torso. ``head``: linear, giving ``output`` (``"logits"`` or ``"mean"``);
    ``log_std [d]`` for a Gaussian, else None. ``action``: the action family's sampling rule, which
    holds the action space's numbers (``rule.distribution``: categorical, multi_categorical,
    bernoulli or diag_gaussian).
    """

    inputs: tuple[ObsInput, ...]
    dict_obs: bool
    recurrent: Optional[Recurrent]
    layers: tuple[Dense, ...]
    head: Dense
    output: str
    log_std: Optional[np.ndarray]
    action: SamplingRule

    @property
    def obs_size(self) -> int:
        """Floats of one packed observation: every input side by side."""
        return sum(i.size for i in self.inputs)

    @property
    def features(self) -> int:
        """Width of the concatenated observation features (what the core or first layer takes)."""
        return sum(i.width for i in self.inputs)

    @property
    def state_size(self) -> int:
        """The recurrent state's length; 0 for a feed-forward plan."""
        return self.recurrent.state_size if self.recurrent is not None else 0

    @property
    def params_size(self) -> int:
        """Floats of the parameters side by side: logits ``[k]``, or mean ``[d]`` then log_std ``[d]``."""
        return sum(self.action.param_sizes.values())

    @property
    def noise_size(self) -> int:
        """Floats of one action's contract noise (the rule's): a uniform per logit, or a standard
        normal per mean."""
        return self.action.noise_width

    @property
    def arrays(self) -> list[np.ndarray]:
        """Every weight and statistic the plan computes with."""
        out = [a for d in self.layers + (self.head,) for a in (d.kernel, d.bias)]
        out += [a for i in self.inputs if i.normalizer is not None for a in (i.normalizer.mean, i.normalizer.inv_std)]
        if self.log_std is not None:
            out.append(self.log_std)
        if self.recurrent is not None:
            out += [self.recurrent.kernel, self.recurrent.recurrent_kernel, self.recurrent.bias]
        return out

"""The noise-in contract of a stochastic export (``stochastic=True``), on the agent's side: no TensorFlow.

A stochastic file takes a second input, ``noise`` float32 ``[batch, width]``, and returns
``sampled_action``, a deterministic function of the observation and the noise: the same noise
gives the same action on every format and in the agent. The rule (the noise's kind and width per
action family, and the action as a function of parameters and noise) is
keras_trpo_serving/sampling.py's, in short:

- ``categorical``: ``width = n`` uniforms in [0, 1); Gumbel-max,
  ``argmax(logits - log(-log(u + 1e-20) + 1e-20)) + start``.
- ``multi_categorical``: ``width = sum(nvec)`` uniforms, one per logit, laid out like ``logits``;
  Gumbel-max within each categorical.
- ``bernoulli``: ``width = n`` uniforms; ``1`` where ``log(u) - log(1 - u) < logit`` (that is,
  ``u < sigmoid(logit)``), else ``0``.
- ``diag_gaussian``: ``width = d`` standard normals; ``clip(mean + exp(log_std) * z, low, high)``.

Gumbel-max and the logit comparison, not an inverse CDF over the softmax, because they are what
the agent's own rollout computes from its uniforms: an inverse CDF is a different function of the
uniforms and would give other actions for the same noise. ``agent_sampled_action`` is the agent's
float64 rule fed this noise; the exported graphs compute the rule's float32 formulas.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_trpo_serving import sampling

NOISE = "noise"  # the input's name
SAMPLED_ACTION = "sampled_action"  # the output's name


@dataclass(frozen=True)
class NoiseSpec:
    kind: str  # keras_trpo_serving.sampling's UNIFORM ([0, 1)) or NORMAL (standard normal)
    width: int  # noise per observation

    def as_metadata(self) -> str:
        """The ``noise`` metadata value, JSON: ``{"distribution": "uniform", "shape": [4], "dtype": "float32"}``
        (the shape of one observation's noise; the input is ``[batch, *shape]``)."""
        return sampling.noise_metadata(self.kind, self.width)


def noise_spec(agent) -> NoiseSpec:
    """The agent's noise: uniforms for the categorical families, standard normals for a Gaussian."""
    rule = agent.family.rule
    return NoiseSpec(rule.noise_kind, rule.noise_width)


def draw_noise(spec: NoiseSpec, rng: np.random.Generator, rows: int) -> np.ndarray:
    """``[rows, width]`` float32 noise as a device would draw it."""
    return sampling.draw_noise(rng, spec.kind, rows, spec.width)


def agent_sampled_action(agent, params: dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
    """The agent's action for distribution parameters ``params`` and contract ``noise``, as the
    env takes it (Box actions clipped to the bounds, ``start`` added, the space's dtype)."""
    return agent.family.rule.agent_action(params, noise)

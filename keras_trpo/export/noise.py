"""The noise-in contract of a stochastic export (``stochastic=True``), in NumPy: no TensorFlow.

A stochastic file takes a second input, ``noise`` float32 ``[batch, width]``, and returns
``sampled_action``, a deterministic function of the observation and the noise: the same noise
gives the same action on every format and in the agent. Per distribution:

- ``categorical``: ``width = n`` uniforms in [0, 1); Gumbel-max,
  ``argmax(logits - log(-log(u + 1e-20) + 1e-20)) + start``.
- ``multi_categorical``: ``width = sum(nvec)`` uniforms, one per logit, laid out like ``logits``;
  Gumbel-max within each categorical.
- ``bernoulli``: ``width = n`` uniforms; ``1`` where ``log(u) - log(1 - u) < logit`` (that is,
  ``u < sigmoid(logit)``), else ``0``.
- ``diag_gaussian``: ``width = d`` standard normals; ``clip(mean + exp(log_std) * z, low, high)``.

Gumbel-max and the logit comparison, not an inverse CDF over the softmax, because they are what
the agent's own rollout sampler (``keras_trpo/sampling.py``) computes from its uniforms: an
inverse CDF is a different function of the uniforms and would give other actions for the same
noise. ``agent_sampled_action`` is the agent's sampler fed this noise; the exported graphs
compute the same formulas in float32.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

NOISE = "noise"  # the input's name
SAMPLED_ACTION = "sampled_action"  # the output's name
UNIFORM, NORMAL = "uniform", "normal"
GUMBEL_EPS = 1e-20  # keras_trpo/sampling.py's _gumbel: keeps log() finite at u = 0 and u -> 1


@dataclass(frozen=True)
class NoiseSpec:
    kind: str  # UNIFORM ([0, 1)) or NORMAL (standard normal)
    width: int  # noise per observation

    def as_metadata(self) -> str:
        """The ``noise`` metadata value, JSON: ``{"distribution": "uniform", "shape": [4], "dtype": "float32"}``
        (the shape of one observation's noise; the input is ``[batch, *shape]``)."""
        return json.dumps({"distribution": self.kind, "shape": [self.width], "dtype": "float32"})


def noise_spec(agent) -> NoiseSpec:
    """The agent's noise: uniforms for the categorical families, standard normals for a Gaussian."""
    width = int(sum(agent.family.head_sizes.values()))
    if agent.family.name == "diag_gaussian":
        return NoiseSpec(NORMAL, width // 2)  # head_sizes counts mean and log_std
    return NoiseSpec(UNIFORM, width)


def draw_noise(spec: NoiseSpec, rng: np.random.Generator, rows: int) -> np.ndarray:
    """``[rows, width]`` float32 noise as a device would draw it."""
    shape = (rows, spec.width)
    return rng.standard_normal(shape, dtype=np.float32) if spec.kind == NORMAL else rng.random(shape, np.float32)


def gumbel_from_uniform(u: np.ndarray) -> np.ndarray:
    """The agent's Gumbel noise from its uniforms (``keras_trpo.sampling._gumbel``)."""
    return -np.log(-np.log(u + GUMBEL_EPS) + GUMBEL_EPS)


def logit_from_uniform(u: np.ndarray) -> np.ndarray:
    """The agent's Bernoulli noise from its uniforms (``BernoulliSampler.draw``)."""
    return np.log(u + 1e-300) - np.log1p(-u)


def agent_noise(sampler, family: str, noise: np.ndarray) -> np.ndarray:
    """Contract noise ``[B, width]`` -> the noise the agent's ``sampler.sample`` takes, in float64."""
    u = np.asarray(noise, np.float64)
    if family == "diag_gaussian":
        return u
    if family == "bernoulli":
        return logit_from_uniform(u)
    g = gumbel_from_uniform(u)
    if family == "categorical":
        return g
    # multi_categorical: the sampler's padded [B, k, max(nvec)] layout; pad cells hold logits of
    # -1e9 and never win, so their noise is irrelevant (0 here).
    padded = np.concatenate([g, np.zeros((len(g), 1))], -1)
    return padded[:, sampler.index]


def agent_sampled_action(agent, params: dict[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
    """The agent's action for distribution parameters ``params`` and contract ``noise``, as the
    env takes it (Box actions clipped to the bounds, ``start`` added, the space's dtype)."""
    sampler = agent.family.sampler
    stored = sampler.sample(params, agent_noise(sampler, agent.family.name, noise))
    return sampler.to_env(stored)

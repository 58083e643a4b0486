"""The sampling rule (keras_trpo_serving/sampling.py) for a gymnasium action space. No TensorFlow.

Rollout workers import this (and not ``distributions``, which needs TensorFlow) so that a
worker process starts in a fraction of a second and a few tens of MB. The rule's ``draw(rng, n)``
makes one environment's noise from that environment's own generator and ``sample(params, noise)``
combines it with the parameters by exact operations, so results do not depend on how environments
are grouped.
"""
from __future__ import annotations

import gymnasium as gym

from keras_trpo.spaces import UnsupportedSpaceError
from keras_trpo_serving.sampling import SamplingRule, rule_for


def distribution_for(space: gym.Space) -> str:
    """The distribution family's name for an action space (``categorical``, ``multi_categorical``,
    ``bernoulli``, ``diag_gaussian``), or ``UnsupportedSpaceError`` naming the space."""
    if isinstance(space, gym.spaces.Discrete):
        return "categorical"
    if isinstance(space, gym.spaces.MultiDiscrete):
        return "multi_categorical"
    if isinstance(space, gym.spaces.MultiBinary):
        return "bernoulli"
    if isinstance(space, gym.spaces.Box):
        return "diag_gaussian"
    raise UnsupportedSpaceError(
        f"action space {space!r} is not supported; keras_trpo supports Discrete, Box, "
        "MultiDiscrete and MultiBinary action spaces"
    )


def sampling_rule(space: gym.Space) -> SamplingRule:
    """The sampling rule for an action space (``UnsupportedSpaceError`` as ``distribution_for``)."""
    return rule_for(distribution_for(space), space)

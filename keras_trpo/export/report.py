"""``ExportReport``: what an exporter returns (and ``python -m keras_trpo.export`` prints as JSON)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class ExportReport:
    path: str
    size_bytes: int
    seconds: float
    opset: Optional[int] = None
    verified_observations: int = 0
    verified_episodes: Optional[int] = None  # a recurrent policy: the episodes its steps belong to
    worst_difference: Optional[float] = None  # the largest |file - agent| of a float output, in its units
    # ... and the largest difference as a fraction of its tolerance (keras_trpo/export/compare.py: <= 1 if verified)
    worst_difference_of_tolerance: Optional[float] = None
    quantization: Optional[str] = None  # "dynamic-int8" or "static-int8"
    quantized_path: Optional[str] = None
    quantized_size_bytes: Optional[int] = None
    quantized_worst_action_difference: Optional[float] = None
    quantized_action_mismatch_fraction: Optional[float] = None  # discrete actions that changed
    quantized_calibration_observations: Optional[int] = None  # static-int8: how many, from rollouts
    # A stochastic file (stochastic=True; every C export): the worst |sampled action - the agent's| with the
    # same noise (0 for discrete actions, which must be equal), and the tests of its draws.
    stochastic: bool = False
    sampled_worst_difference: Optional[float] = None
    sampler_tests: Optional[int] = None  # chi-square / Kolmogorov-Smirnov tests of the draws
    sampler_draws: Optional[int] = None  # per tested observation
    sampler_min_p_value: Optional[float] = None
    # A masked file (action_mask input): the actions (deterministic and sampled) its verification found the
    # mask forbade, always 0 for a verified file (verified_episodes then counts the env episodes under the env's masks).
    invalid_actions: Optional[int] = None
    metadata: dict = field(default_factory=dict)

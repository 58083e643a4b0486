"""The one verification harness every export format plugs into: observations to verify on,
the comparison with the agent, and ``verify_against_agent``, which ties them together.

A format supplies a *runner*, ``obs [N, *obs_shape] float32 -> {output name: [N, ...]}``
(onnxruntime, ai-edge-litert, tflite-micro, the compiled C library, a loaded SavedModel), and
gets the worst difference back or an ``ExportVerificationError`` naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import gymnasium as gym
import numpy as np

from export.errors import ExportVerificationError
from keras_trpo.spaces import obs_shape

CONTINUOUS_TOLERANCE = 1e-5
Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


def sample_observations(agent, n: int, seed: int = 0) -> np.ndarray:
    """``[n, *obs_shape]`` float32 drawn from the observation space.

    Unbounded Box dimensions are drawn around the normaliser's statistics when
    the policy has them (else from N(0, 1)), so they look like real inputs.
    """
    rng = np.random.default_rng(seed)
    space = agent.observation_space
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=n).astype(np.float32)
    shape = obs_shape(space)
    low = np.broadcast_to(np.asarray(space.low, np.float64), shape)
    high = np.broadcast_to(np.asarray(space.high, np.float64), shape)
    center = np.asarray(agent.obs_rms.mean, np.float64).reshape(shape)
    scale = 2.0 * np.sqrt(np.asarray(agent.obs_rms.var, np.float64)).reshape(shape)
    gauss = center + scale * rng.standard_normal((n,) + shape)
    bounded = np.isfinite(low) & np.isfinite(high)
    uniform = rng.uniform(np.where(bounded, low, 0), np.where(bounded, high, 1), size=(n,) + shape)
    obs = np.where(bounded, uniform, np.clip(gauss, low, high))
    return obs.astype(np.float32)


def rollout_observations(agent, n: int, seed: int = 0, explore: float = 0.3) -> np.ndarray:
    """Up to ``n`` observations visited by the agent in its env (empty if it has no env id).

    Acts greedily with probability ``1 - explore`` and randomly otherwise, to
    visit states off the greedy path too.
    """
    if not agent.env_id:
        return np.empty((0,) + obs_shape(agent.observation_space), np.float32)
    env = gym.make(agent.env_id, **agent.env_kwargs)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    out = []
    try:
        obs, _ = env.reset(seed=seed)
        while len(out) < n:
            out.append(np.asarray(obs, np.float32))
            action = env.action_space.sample() if rng.random() < explore else agent.predict(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return np.stack(out).reshape((-1,) + obs_shape(agent.observation_space))


def verification_observations(agent, n_sampled: int = 1000, n_rollout: int = 1000, seed: int = 0) -> np.ndarray:
    return np.concatenate([sample_observations(agent, n_sampled, seed), rollout_observations(agent, n_rollout, seed)])


def default_calibration(agent, n: int = 1000, seed: int = 1) -> np.ndarray:
    """Observations to calibrate static quantisation on: ``n`` visited by the agent in its env
    (seed 1, not the verification's 0), or sampled from the space if it has no env id."""
    obs = rollout_observations(agent, n, seed)
    return obs if len(obs) else sample_observations(agent, n, seed)


def discrete_action(agent) -> bool:
    """Whether the agent's actions are integers (compared for equality, not to a tolerance)."""
    return agent.family.name != "diag_gaussian"


@dataclass
class Verification:
    observations: np.ndarray  # [N, *obs_shape] float32, what the file ran on
    reference: dict[str, np.ndarray]  # the agent's outputs for them
    outputs: dict[str, np.ndarray]  # the file's
    worst_difference: float


def verify_against_agent(agent, run: Runner, what: str, observations: Optional[np.ndarray] = None,
                         reference: Optional[dict[str, np.ndarray]] = None,
                         tolerance: float = CONTINUOUS_TOLERANCE, noise: Optional[np.ndarray] = None) -> Verification:
    """Run an exported file (``run``) and the agent on the same observations and compare.

    ``observations`` default to ``verification_observations(agent)`` (1,000 sampled, up to
    1,000 visited); ``reference`` to the agent's own outputs for them. With ``noise`` (a
    stochastic file) ``run(obs, noise)`` is called and its ``sampled_action`` compared with the
    agent's sampler fed the same noise. Raises ``ExportVerificationError`` (naming ``what``) if
    a discrete action differs or a continuous output is off by more than ``tolerance``.
    """
    obs = np.asarray(observations if observations is not None else verification_observations(agent), np.float32)
    if reference is None:
        from export.reference import agent_reference  # TensorFlow: only when a reference is needed

        reference = agent_reference(agent, obs) if noise is None else agent_reference(agent, obs, noise)
    outputs = run(obs) if noise is None else run(obs, noise)
    worst = compare_outputs(reference, outputs, discrete_action(agent), what, tolerance)
    return Verification(obs, reference, outputs, worst)


def compare_outputs(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], discrete_action: bool,
                    what: str, tolerance: float = CONTINUOUS_TOLERANCE) -> float:
    """Raise ``ExportVerificationError`` unless every output matches; returns the worst difference."""
    worst = 0.0
    for name, ref in reference.items():
        if name not in exported:
            raise ExportVerificationError(f"{what}: output {name!r} is missing (has {sorted(exported)})")
        got = np.asarray(exported[name])
        if got.shape != ref.shape:
            raise ExportVerificationError(f"{what}: output {name!r} has shape {got.shape}, expected {ref.shape}")
        if name in ("action", "sampled_action") and discrete_action:
            mismatches = int(np.sum(np.any(got.reshape(len(got), -1) != ref.reshape(len(ref), -1), axis=1)))
            if mismatches:
                raise ExportVerificationError(f"{what}: {mismatches} of {len(ref)} discrete {name.replace('_', ' ')}s "
                                              "differ from the agent's")
            continue
        # Absolute below magnitude 1, relative above: float32 logits of 50 carry ~4e-6 of rounding alone.
        scale = np.maximum(1.0, np.abs(ref.astype(np.float64)))
        diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)) / scale)) if ref.size else 0.0
        worst = max(worst, diff)
        if not diff <= tolerance:
            raise ExportVerificationError(
                f"{what}: output {name!r} differs from the agent's by up to {diff:.3g} "
                f"(tolerance {tolerance:g}, relative for values above 1)"
            )
    return worst


def run_in_batches(fn: Callable[..., dict[str, np.ndarray]], obs: np.ndarray, batch: int = 4096,
                   noise: Optional[np.ndarray] = None) -> dict:
    """``fn(obs)`` (or ``fn(obs, noise)``) over slices of ``batch`` rows, concatenated."""
    if noise is None:
        parts = [fn(obs[i: i + batch]) for i in range(0, len(obs), batch)]
    else:
        parts = [fn(obs[i: i + batch], noise[i: i + batch]) for i in range(0, len(obs), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

"""Checks of a stochastic export (``stochastic=True``; the C export always has them): with the
same noise the file's ``sampled_action`` equals the agent's, and the file's draws follow the
agent's distribution (keras_trpo/export/sampler_check.py's chi-square and Kolmogorov-Smirnov tests).

A *noise runner* is ``(obs [N, *obs_shape], noise [N, width]) -> {output name: [N, ...]}`` (``obs``
the feeds by input name for a Dict or recurrent policy, keras_trpo/export/inputs.py). A recurrent file is
checked over episodes: the same noise per step as the agent's, and the draws at a few steps from
the state the agent had there.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import gymnasium as gym
import numpy as np

from keras_trpo.export.inputs import STATE_IN, runner_input
from keras_trpo.export.noise import SAMPLED_ACTION, agent_sampled_action, draw_noise, noise_spec
from keras_trpo.export.report import ExportReport
from keras_trpo.export.sampler_check import check_sampler
from keras_trpo.export.verify import Episodes, step_noise, verify_against_agent, verify_episodes

NOISE_SEED = 20261204  # the verification noise, one row per verification observation
SAMPLER_OBSERVATIONS = 4  # the first of the verification observations
SAMPLER_DRAWS = 2000  # per observation
SAMPLER_SEED = 20240518
NoiseRunner = Callable[[np.ndarray, np.ndarray], dict]


def verification_noise(agent, rows: int, seed: int = NOISE_SEED) -> np.ndarray:
    return draw_noise(noise_spec(agent), np.random.default_rng(seed), rows)


def sampler_arguments(agent) -> dict:
    """``check_sampler``'s description of the action space: categoricals' sizes and starts, Box bounds."""
    space = agent.action_space
    if isinstance(space, gym.spaces.Discrete):
        return {"nvec": [int(space.n)], "starts": [int(space.start)]}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"nvec": np.asarray(space.nvec).reshape(-1).tolist(), "starts": np.asarray(space.start).reshape(-1).tolist()}
    if isinstance(space, gym.spaces.Box):
        return {"low": np.asarray(space.low, np.float32).reshape(-1), "high": np.asarray(space.high, np.float32).reshape(-1)}
    return {}


def check_distribution(agent, run: NoiseRunner, what: str, obs, params: dict[str, np.ndarray],
                       draws: int = SAMPLER_DRAWS, seed: int = SAMPLER_SEED):
    """``draws`` sampled actions of the file for each of ``obs [K, ...]`` (or the feeds by input
    name, each ``[K, ...]``; noise from ``seed``), tested against the agent's distribution
    ``params [K, ...]``: ``SamplerCheck`` or ``ExportVerificationError``."""
    if isinstance(obs, Mapping):
        k = len(next(iter(obs.values())))
        x = {name: np.repeat(np.asarray(v, np.float32), draws, axis=0) for name, v in obs.items()}
    else:
        k = len(obs)
        x = np.repeat(np.asarray(obs, np.float32), draws, axis=0)
    got = np.asarray(run(x, draw_noise(noise_spec(agent), np.random.default_rng(seed), k * draws))[SAMPLED_ACTION])
    flat = {n: np.asarray(v).reshape(k, -1) for n, v in params.items()}
    return check_sampler(agent.family.name, flat, got.reshape(k, draws, -1), what=f"{what} sampler",
                         **sampler_arguments(agent))


def verify_stochastic(agent, run: NoiseRunner, what: str, obs: np.ndarray, report: ExportReport,
                      reference: Optional[dict[str, np.ndarray]] = None) -> None:
    """Every output of a written stochastic file against the agent's with the same noise, then
    the statistical test of its draws; fills the report's ``worst_difference``, ``sampled_*``
    and ``sampler_*`` fields (``ExportVerificationError`` if a check fails). ``reference``: the
    agent's deterministic outputs for ``obs``, if already computed."""
    noise = verification_noise(agent, len(obs))
    if reference is not None:
        params = {n: reference[n] for n in agent.family.param_names}
        reference = dict(reference, **{SAMPLED_ACTION: agent_sampled_action(agent, params, noise)})
    checked = verify_against_agent(agent, run, what, obs, reference, noise=noise)
    report.worst_difference, report.stochastic = checked.worst_difference, True
    got = checked.outputs[SAMPLED_ACTION].astype(np.float64)
    ref = checked.reference[SAMPLED_ACTION].astype(np.float64)
    report.sampled_worst_difference = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    k = min(SAMPLER_OBSERVATIONS, len(obs))
    params = {n: checked.reference[n][:k] for n in agent.family.param_names}
    result = check_distribution(agent, run, what, runner_input(agent, obs[:k]), params)
    report.sampler_tests, report.sampler_draws, report.sampler_min_p_value = result.tests, result.draws, result.min_p_value


def verify_stochastic_episodes(agent, run: NoiseRunner, what: str, episodes: Episodes, report: ExportReport) -> None:
    """``verify_stochastic`` for a recurrent file: every output of every step over ``episodes``
    with the same noise as the agent's (``verify_episodes``), then the statistical test of its
    draws at the first steps of the first lanes, from the state the agent had there."""
    from keras_trpo.export.reference import agent_episode_reference  # TensorFlow: only here

    noise = step_noise(agent, episodes)
    reference = agent_episode_reference(agent, episodes, noise)  # with the states the agent had (state_in)
    checked = verify_episodes(agent, run, what, episodes, reference, noise=noise)
    report.worst_difference, report.stochastic = checked.worst_difference, True
    got = checked.outputs[SAMPLED_ACTION].astype(np.float64)
    ref = checked.reference[SAMPLED_ACTION].astype(np.float64)
    report.sampled_worst_difference = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    # Steps 0 and 1 of the first lanes: step 1 starts from a state the step before computed.
    picks = [(t, lane) for t in range(min(2, episodes.steps)) for lane in range(min(2, episodes.lanes))]
    k = min(SAMPLER_OBSERVATIONS, len(picks))
    t_idx, l_idx = (np.array(i) for i in zip(*picks[:k]))
    feeds = runner_input(agent, episodes.observations[t_idx, l_idx], reference[STATE_IN][t_idx, l_idx])
    params = {n: reference[n][t_idx, l_idx] for n in agent.family.param_names}
    result = check_distribution(agent, run, what, feeds, params)
    report.sampler_tests, report.sampler_draws, report.sampler_min_p_value = result.tests, result.draws, result.min_p_value

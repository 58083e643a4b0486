"""The one verification harness: every written file, of every format, is checked against the agent here.

A format supplies a *runner*, ``{input name: [N, ...]} -> {output name: [N, ...]}`` (onnxruntime,
ai-edge-litert, tflite-micro, a loaded SavedModel, the compiled C library: keras_trpo/export/inputs.py
names the inputs), and ``verify_file`` drives the checks the policy needs:

- a feed-forward policy (one ``obs`` input, or one per Dict key) on observations sampled from the
  space and visited in the env, every output compared with the agent's (keras_trpo/export/compare.py);
- a recurrent one stepped through ``Episodes``, the file's own ``state_out`` fed back as the next
  ``state_in`` and zeros at every episode start, each step compared with the agent's;
- a stochastic file (``noise`` input) also with the same noise as the agent's sampler, then the
  statistical test of its draws (keras_trpo/export/sampler_check.py);
- a masked file (``action_mask`` input) with a mask per row: over whole episodes of the env under
  the env's own masks and on sampled observations under random valid masks
  (``observations.masked_inputs``), its actions (deterministic and sampled) equal to the agent's
  and none of them one the mask forbade (keras_trpo/export/mask_check.py).

The agent's side comes from keras_trpo/export/reference.py, the observations from
keras_trpo/export/observations.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np

from keras_trpo.export.compare import Difference, compare_outputs, output_scales
from keras_trpo.export.description import PolicyDescription
from keras_trpo.export.errors import ExportError, ExportVerificationError
from keras_trpo.export.inputs import ACTION, STATE_IN, STATE_OUT, Feeds, Runner
from keras_trpo.export.mask_check import invalid_rows
from keras_trpo.export.noise import NOISE, SAMPLED_ACTION, draw_noise
from keras_trpo.export.observations import Episodes, Inputs, MaskedObservations, default_inputs, with_masks
from keras_trpo.export.reference import agent_reference, masks_of, with_sampled_action
from keras_trpo.export.report import ExportReport
from keras_trpo.export.sampler_check import SamplerCheck, check_sampler

NOISE_SEED = 20261204  # the verification noise, one row per verification observation (or step of a lane)
SAMPLER_OBSERVATIONS = 4  # the draws are tested at this many of the verification observations
SAMPLER_DRAWS = 2000  # per observation
SAMPLER_SEED = 20240518


@dataclass
class Verification:
    """What a file was verified on and how close it came to the agent."""

    inputs: Inputs  # observations [N, *obs_shape], or Episodes
    reference: dict[str, np.ndarray]  # the agent's outputs ([N, ...], or [T, L, ...] with state_in)
    outputs: dict[str, np.ndarray]  # the file's, alike
    difference: Difference  # the largest float difference, absolute and as a fraction of its tolerance
    sampled_worst_difference: Optional[float] = None  # stochastic: the largest |sampled action - the agent's|
    sampler: Optional[SamplerCheck] = None  # stochastic: the test of the file's draws
    invalid_actions: Optional[int] = None  # masked: actions (deterministic and sampled) the mask forbade

    @property
    def worst_difference(self) -> float:
        return self.difference.absolute

    @property
    def observations(self) -> int:
        return self.inputs.steps * self.inputs.lanes if isinstance(self.inputs, Episodes) else len(self.inputs)

    @property
    def episodes(self) -> Optional[int]:
        if isinstance(self.inputs, MaskedObservations):
            return self.inputs.episodes or None
        return self.inputs.count if isinstance(self.inputs, Episodes) else None

    def fill(self, report: ExportReport) -> None:
        """Record the result in an export's report."""
        report.worst_difference = self.difference.absolute
        report.worst_difference_of_tolerance = self.difference.of_tolerance
        report.verified_observations, report.verified_episodes = self.observations, self.episodes
        if self.sampler is not None:
            report.stochastic = True
            report.sampled_worst_difference = self.sampled_worst_difference
            report.sampler_tests, report.sampler_draws = self.sampler.tests, self.sampler.draws
            report.sampler_min_p_value = self.sampler.min_p_value
        if self.invalid_actions is not None:
            report.invalid_actions = self.invalid_actions


def verify_file(desc: PolicyDescription, run: Runner, what: str, *, stochastic: bool = False,
                inputs: Optional[Inputs] = None, reference: Optional[dict[str, np.ndarray]] = None) -> Verification:
    """Run a written file (``run``, named ``what`` in errors) and compare it with the agent.

    ``inputs``: observations ``[N, *obs_shape]`` for a feed-forward policy, ``Episodes`` for a
    recurrent one (default ``observations.default_inputs``); a masked policy's may carry masks
    (``MaskedObservations``, ``Episodes.masks``), else random valid ones are drawn
    (``observations.with_masks``). ``reference``: the agent's outputs for them
    (``reference.agent_reference``), if already computed. ``stochastic``: the file takes ``noise``
    and returns ``sampled_action``. Raises ``ExportVerificationError`` naming the output, the
    observation or episode and step, and the difference against its tolerance, or the first action a
    mask forbade.
    """
    inputs = default_inputs(desc) if inputs is None else inputs
    if desc.is_recurrent != isinstance(inputs, Episodes):
        raise ExportError("a recurrent policy is verified on Episodes (keras_trpo.export.observations.Episodes), "
                          "a feed-forward one on observations [N, *obs_shape]")
    if not isinstance(inputs, (Episodes, MaskedObservations)):
        inputs = np.asarray(inputs, np.float32)
    inputs = with_masks(desc, inputs)
    noise = verification_noise(desc, inputs) if stochastic else None
    if reference is None:
        reference = agent_reference(desc, inputs, noise)
    elif stochastic and SAMPLED_ACTION not in reference:
        reference = with_sampled_action(desc, reference, noise, masks_of(inputs))
    if isinstance(inputs, Episodes):
        outputs, difference = _step_through(desc, run, what, inputs, reference, noise)
    else:
        outputs = run(feeds_of(desc, inputs, noise=noise))
        difference = compare_outputs(reference, outputs, what, discrete_actions=desc.discrete_actions)
    checked = Verification(inputs, reference, outputs, difference)
    if desc.masked:
        checked.invalid_actions = _check_valid(desc, what, inputs, outputs, reference)
    if stochastic:
        got, ref = (np.asarray(x[SAMPLED_ACTION], np.float64) for x in (outputs, reference))
        checked.sampled_worst_difference = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        checked.sampler = _check_draws(desc, run, what, inputs, reference)
    return checked


def _step_through(desc: PolicyDescription, run: Runner, what: str, episodes: Episodes, reference: dict[str, np.ndarray],
                  noise: Optional[np.ndarray]) -> tuple[dict[str, np.ndarray], Difference]:
    """The file stepped through ``episodes`` carrying its own state (zeros at episode starts), every
    output of every step compared with the agent's (``state_out`` included)."""
    names = [k for k in reference if k != STATE_IN]  # state_in is what the agent started from, not an output
    scales = output_scales({k: reference[k] for k in names})  # of every step: compare.py's rule
    state = np.zeros((episodes.lanes, desc.state_size), np.float32)
    steps, worst = [], Difference()
    for t in range(episodes.steps):
        state = np.where(episodes.starts[t][:, None], np.float32(0), state).astype(np.float32)
        out = run(desc.feeds(episodes.observations[t], state, None if noise is None else noise[t],
                             None if episodes.masks is None else episodes.masks[t]))
        worst.update(compare_outputs(
            {k: reference[k][t] for k in names}, out, what, discrete_actions=desc.discrete_actions, scales=scales,
            row_label=lambda lane, t=t: f"{episodes.label(t, lane)} (lane {lane}, the file carrying its own state)"))
        steps.append(out)
        state = np.asarray(out[STATE_OUT], np.float32)
    return {k: np.stack([s[k] for s in steps]) for k in steps[0]}, worst


def feeds_of(desc: PolicyDescription, inputs, state: Optional[np.ndarray] = None,
             noise: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """The graph's inputs for observations ``[N, ...]`` or ``MaskedObservations`` (their masks)."""
    if isinstance(inputs, MaskedObservations):
        return desc.feeds(inputs.observations, state, noise, inputs.masks)
    return desc.feeds(inputs, state, noise)


def _check_valid(desc: PolicyDescription, what: str, inputs: Inputs, outputs: dict, reference: dict) -> int:
    """The actions (deterministic and sampled) the masks forbade, of the file and of the agent: 0, or
    ``ExportVerificationError`` naming the first."""
    masks = inputs.masks.reshape(-1, desc.mask_width)
    count = 0
    for who, out in (("the agent", reference), (what, outputs)):
        for name in (ACTION, SAMPLED_ACTION):
            if name not in out:
                continue
            actions = np.asarray(out[name]).reshape(len(masks), -1)  # rows: observations, or steps x lanes
            bad = np.flatnonzero(invalid_rows(desc.rule, actions, masks))
            if bad.size:
                i = int(bad[0])
                raise ExportVerificationError(
                    f"{what}: {bad.size} {name.replace('_', ' ')}s of {who} are ones the action mask forbade; the first "
                    f"at row {i}: {actions[i].tolist()} under mask {masks[i].astype(int).tolist()}")
            count += int(bad.size)
    return count


# ------------------------------------------------------------------ stochastic files: the noise and the draws


def verification_noise(desc: PolicyDescription, inputs: Inputs, seed: int = NOISE_SEED) -> np.ndarray:
    """The noise a stochastic file is verified with: ``[N, width]`` for observations, ``[T, L, width]``
    for episodes (one row per step of each lane)."""
    if isinstance(inputs, Episodes):
        noise = draw_noise(desc.noise, np.random.default_rng(seed), inputs.steps * inputs.lanes)
        return noise.reshape(inputs.steps, inputs.lanes, -1)
    return draw_noise(desc.noise, np.random.default_rng(seed), len(inputs))


def sampler_arguments(space: gym.Space) -> dict:
    """``check_sampler``'s description of an action space: categoricals' sizes and starts, Box bounds."""
    if isinstance(space, gym.spaces.Discrete):
        return {"nvec": [int(space.n)], "starts": [int(space.start)]}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"nvec": np.asarray(space.nvec).reshape(-1).tolist(), "starts": np.asarray(space.start).reshape(-1).tolist()}
    if isinstance(space, gym.spaces.Box):
        return {"low": np.asarray(space.low, np.float32).reshape(-1), "high": np.asarray(space.high, np.float32).reshape(-1)}
    return {}


def check_distribution(desc: PolicyDescription, run: Runner, what: str, feeds: Feeds, params: dict[str, np.ndarray],
                       draws: int = SAMPLER_DRAWS, seed: int = SAMPLER_SEED) -> SamplerCheck:
    """``draws`` sampled actions of the file for each of the ``K`` rows of ``feeds`` (noise from
    ``seed``), tested against the agent's distribution ``params [K, ...]`` there: ``SamplerCheck``
    or ``ExportVerificationError``."""
    k = len(next(iter(feeds.values())))
    repeated = {name: np.repeat(np.asarray(v, np.float32), draws, axis=0) for name, v in feeds.items()}
    noise = draw_noise(desc.noise, np.random.default_rng(seed), k * draws)
    got = np.asarray(run(dict(repeated, **{NOISE: noise}))[SAMPLED_ACTION])
    flat = {n: np.asarray(v).reshape(k, -1) for n, v in params.items()}
    return check_sampler(desc.family, flat, got.reshape(k, draws, -1), what=f"{what} sampler",
                         **sampler_arguments(desc.action_space))


def _check_draws(desc: PolicyDescription, run: Runner, what: str, inputs: Inputs,
                 reference: dict[str, np.ndarray]) -> SamplerCheck:
    """The draws at the first ``SAMPLER_OBSERVATIONS`` observations; for episodes at steps 0 and 1 of
    the first lanes (step 1 starts from a state the step before computed), from the agent's state there."""
    if not isinstance(inputs, Episodes):
        k = min(SAMPLER_OBSERVATIONS, len(inputs))
        return check_distribution(desc, run, what, feeds_of(desc, inputs[:k]),
                                  {n: reference[n][:k] for n in desc.param_names})
    picks = [(t, lane) for t in range(min(2, inputs.steps)) for lane in range(min(2, inputs.lanes))]
    t_idx, l_idx = (np.array(i) for i in zip(*picks[:SAMPLER_OBSERVATIONS]))
    feeds = desc.feeds(inputs.observations[t_idx, l_idx], reference[STATE_IN][t_idx, l_idx],
                       mask=None if inputs.masks is None else inputs.masks[t_idx, l_idx])
    return check_distribution(desc, run, what, feeds, {n: reference[n][t_idx, l_idx] for n in desc.param_names})

"""The one verification harness every export format plugs into: observations to verify on,
the comparison with the agent, and ``verify_against_agent``, which ties them together.

A format supplies a *runner*, ``obs [N, *obs_shape] float32 -> {output name: [N, ...]}``
(onnxruntime, ai-edge-litert, tflite-micro, the compiled C library, a loaded SavedModel), and
gets the worst difference back or an ``ExportVerificationError`` naming it. For a Dict or a
recurrent policy the runner takes the feeds by input name instead (``export.inputs.runner_input``:
``{key: ...}``, ``{"obs": ..., "state_in": ...}``).

A recurrent policy is verified over whole episodes (``verify_episodes``): the file is stepped
through ``Episodes`` with its own ``state_out`` fed back as the next ``state_in``, zeros at every
episode start, and each step is compared with the agent's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Union

import gymnasium as gym
import numpy as np

from keras_trpo.export.errors import ExportVerificationError
from keras_trpo.export.inputs import STATE_IN, STATE_OUT, is_recurrent, runner_input
from keras_trpo.dict_obs import layout_of
from keras_trpo.spaces import obs_shape

CONTINUOUS_TOLERANCE = 1e-5
Feeds = Union[np.ndarray, Mapping[str, np.ndarray]]  # ``obs``, or the inputs by name
Runner = Callable[[Feeds], dict[str, np.ndarray]]
EPISODES = 10  # a recurrent policy is verified over this many episodes of its env
SAMPLED_LANES, SAMPLED_STEPS, SAMPLED_START_RATE = 8, 64, 0.1  # without an env: random sequences
MAX_EPISODE_STEPS = 1000  # an episode longer than this is cut (its steps are still compared)


def sample_observations(agent, n: int, seed: int = 0) -> np.ndarray:
    """``[n, *obs_shape]`` float32 drawn from the observation space (a Dict space's packed ``[n, width]``).

    Unbounded Box dimensions are drawn around the normaliser's statistics when
    the policy has them (else from N(0, 1)), so they look like real inputs.
    """
    rng = np.random.default_rng(seed)
    space = agent.observation_space
    layout = layout_of(space)
    if layout is None:
        return _sample_space(space, agent.obs_rms.mean, agent.obs_rms.var, n, rng)
    out = np.empty((n, layout.width), np.float32)
    for e in layout.entries:
        if e.kind == "discrete":
            out[:, e.start] = rng.integers(0, e.n, size=n)
        else:
            stats = agent.obs_rms[e.key]
            out[:, e.start:e.stop] = _sample_space(space[e.key], stats.mean, stats.var, n, rng)
    return out


def _sample_space(space: gym.Space, mean, var, n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=n).astype(np.float32)
    shape = obs_shape(space)
    low = np.broadcast_to(np.asarray(space.low, np.float64), shape)
    high = np.broadcast_to(np.asarray(space.high, np.float64), shape)
    center = np.asarray(mean, np.float64).reshape(shape)
    scale = 2.0 * np.sqrt(np.asarray(var, np.float64)).reshape(shape)
    gauss = center + scale * rng.standard_normal((n,) + shape)
    bounded = np.isfinite(low) & np.isfinite(high)
    uniform = rng.uniform(np.where(bounded, low, 0), np.where(bounded, high, 1), size=(n,) + shape)
    obs = np.where(bounded, uniform, np.clip(gauss, low, high))
    return obs.astype(np.float32)


def packed(agent, observations: list) -> np.ndarray:
    """Observations as an env returns them, one per env -> ``[n, *obs_shape]`` float32 (a Dict's packed form)."""
    layout = layout_of(agent.observation_space)
    if layout is not None:
        return layout.pack(observations, len(observations))
    return np.asarray(observations, np.float32).reshape((-1,) + obs_shape(agent.observation_space))


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
            out.append(obs)
            action = env.action_space.sample() if rng.random() < explore else agent.predict(obs)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return packed(agent, out)


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
        from keras_trpo.export.reference import agent_reference  # TensorFlow: only when a reference is needed

        reference = agent_reference(agent, obs) if noise is None else agent_reference(agent, obs, noise)
    feeds = runner_input(agent, obs)
    outputs = run(feeds) if noise is None else run(feeds, noise)
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


def run_in_batches(fn: Callable[..., dict[str, np.ndarray]], obs: Feeds, batch: int = 4096,
                   noise: Optional[np.ndarray] = None) -> dict:
    """``fn(obs)`` (or ``fn(obs, noise)``) over slices of ``batch`` rows, concatenated; ``obs``
    may be the feeds by input name (each sliced alike)."""
    def rows(x, i):
        return {k: v[i: i + batch] for k, v in x.items()} if isinstance(x, Mapping) else x[i: i + batch]

    n = len(next(iter(obs.values()))) if isinstance(obs, Mapping) else len(obs)
    if noise is None:
        parts = [fn(rows(obs, i)) for i in range(0, n, batch)]
    else:
        parts = [fn(rows(obs, i), noise[i: i + batch]) for i in range(0, n, batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def run_feeds_in_batches(fn: Callable[[dict], dict[str, np.ndarray]], feeds: Mapping[str, np.ndarray],
                         batch: int = 4096) -> dict:
    """``fn(feeds)`` over slices of ``batch`` rows of every input, concatenated."""
    return run_in_batches(fn, feeds, batch)


# ------------------------------------------------------------------ recurrent policies: whole episodes


@dataclass
class Episodes:
    """``steps`` steps of ``lanes`` sequences side by side, as a vector env's rollout.

    ``observations [T, L, *obs_shape]`` float32 (a Dict's packed form); ``starts [T, L]`` bool,
    True at step 0 of every lane and wherever an episode begins (the state is zeros there).
    """

    observations: np.ndarray
    starts: np.ndarray

    def __post_init__(self):
        self.starts = np.asarray(self.starts, bool).copy()
        self.starts[0] = True  # every lane begins an episode
        self.observations = np.asarray(self.observations, np.float32)

    @property
    def steps(self) -> int:
        return int(self.starts.shape[0])

    @property
    def lanes(self) -> int:
        return int(self.starts.shape[1])

    @property
    def count(self) -> int:
        """The number of episodes (whole or cut at the end of a lane)."""
        return int(self.starts.sum())

    def label(self, t: int, lane: int) -> str:
        """``"episode 3, step 7"`` for step ``t`` of ``lane`` (episodes numbered lane by lane from 0)."""
        before = int(self.starts[:, :lane].sum())
        episode = before + int(self.starts[: t + 1, lane].sum()) - 1
        first = int(np.flatnonzero(self.starts[: t + 1, lane])[-1])
        return f"episode {episode}, step {t - first}"


def sample_episodes(agent, lanes: int = SAMPLED_LANES, steps: int = SAMPLED_STEPS, seed: int = 0,
                    start_rate: float = SAMPLED_START_RATE) -> Episodes:
    """Observations sampled from the space (``sample_observations``), with episode starts at random."""
    obs = sample_observations(agent, lanes * steps, seed).reshape((steps, lanes) + obs_shape(agent.observation_space))
    return Episodes(obs, np.random.default_rng(seed + 1).random((steps, lanes)) < start_rate)


def rollout_episodes(agent, episodes: int = EPISODES, seed: int = 0, explore: float = 0.3,
                     max_steps: int = MAX_EPISODE_STEPS) -> Episodes:
    """``episodes`` episodes of the agent's env side by side (env i reset with ``seed + i``), each
    lane stepped until every lane has finished its first episode (a lane that finishes early begins
    another, which is compared too). Acts with ``agent.predict`` carrying its state, randomly with
    probability ``explore``."""
    envs = [gym.make(agent.env_id, **agent.env_kwargs) for _ in range(episodes)]
    rng = np.random.default_rng(seed)
    try:
        for i, env in enumerate(envs):
            env.action_space.seed(seed + i)
        obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
        finished = np.zeros(episodes, bool)
        starts, steps = np.ones(episodes, bool), []
        state = None
        while not finished.all() and len(steps) < max_steps:
            batch = packed(agent, obs)
            steps.append((batch, starts.copy()))
            actions, state = agent.predict(_user_batch(agent, obs), state, starts)
            starts[:] = False
            for i, env in enumerate(envs):
                action = env.action_space.sample() if rng.random() < explore else actions[i]
                obs[i], _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    finished[i], starts[i] = True, True
                    obs[i], _ = env.reset()
    finally:
        for env in envs:
            env.close()
    return Episodes(np.stack([b for b, _ in steps]), np.stack([s for _, s in steps]))


def _user_batch(agent, obs: list):
    """One observation per env -> the batch ``agent.predict`` takes (a dict of arrays for a Dict space)."""
    layout = layout_of(agent.observation_space)
    if layout is None:
        return np.asarray(obs, np.float32)
    return {k: np.stack([np.asarray(o[k]) for o in obs]) for k in layout.keys}


def verification_episodes(agent, seed: int = 0) -> Episodes:
    """``EPISODES`` episodes of the agent's env, or without an env id sequences sampled from the space."""
    return rollout_episodes(agent, seed=seed) if agent.env_id else sample_episodes(agent, seed=seed)


def step_noise(agent, episodes: Episodes, seed: Optional[int] = None) -> np.ndarray:
    """``[T, L, width]`` noise for a stochastic recurrent file, one row per step of each lane."""
    from keras_trpo.export.stochastic import NOISE_SEED, verification_noise

    noise = verification_noise(agent, episodes.steps * episodes.lanes, NOISE_SEED if seed is None else seed)
    return noise.reshape(episodes.steps, episodes.lanes, -1)


@dataclass
class EpisodeVerification:
    episodes: Episodes  # what the file ran on
    reference: dict[str, np.ndarray]  # the agent's outputs per step, [T, L, ...]
    outputs: dict[str, np.ndarray]  # the file's
    worst_difference: float


def verify_episodes(agent, run: Runner, what: str, episodes: Optional[Episodes] = None,
                    reference: Optional[dict[str, np.ndarray]] = None, tolerance: float = CONTINUOUS_TOLERANCE,
                    noise: Optional[np.ndarray] = None) -> EpisodeVerification:
    """Step a recurrent file (``run``) through ``episodes`` (default ``verification_episodes``),
    feeding its own ``state_out`` back as the next ``state_in`` and zeros at episode starts, and
    compare every output of every step (``state_out`` included) with the agent's, stepped alike
    (``reference``, default ``agent_episode_reference``). With ``noise [T, L, width]`` the file
    is called ``run(feeds, noise[t])`` and its ``sampled_action`` compared too.
    ``ExportVerificationError`` names the first episode and step that differ.
    """
    eps = episodes if episodes is not None else verification_episodes(agent)
    if reference is None:
        from keras_trpo.export.reference import agent_episode_reference  # TensorFlow: only when a reference is needed

        reference = agent_episode_reference(agent, eps, noise)
    reference = {k: v for k, v in reference.items() if k != STATE_IN}  # not a file output
    state = np.zeros((eps.lanes, int(agent.state_size)), np.float32)
    steps, worst, discrete = [], 0.0, discrete_action(agent)
    for t in range(eps.steps):
        state = np.where(eps.starts[t][:, None], np.float32(0), state).astype(np.float32)
        feeds = runner_input(agent, eps.observations[t], state)
        out = run(feeds) if noise is None else run(feeds, noise[t])
        if STATE_OUT not in out:
            raise ExportVerificationError(f"{what}: output {STATE_OUT!r} is missing (has {sorted(out)})")
        ref = {k: v[t] for k, v in reference.items()}
        try:
            worst = max(worst, compare_outputs(ref, out, discrete, what, tolerance))
        except ExportVerificationError:
            raise _first_difference(eps, t, ref, out, discrete, what, tolerance) from None
        steps.append(out)
        state = np.asarray(out[STATE_OUT], np.float32)
    outputs = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
    return EpisodeVerification(eps, reference, outputs, worst)


def _first_difference(eps: Episodes, t: int, ref: dict, out: dict, discrete: bool, what: str,
                      tolerance: float) -> ExportVerificationError:
    """The error for step ``t``, naming the first lane's episode and step that differs."""
    for lane in range(eps.lanes):
        try:
            compare_outputs({k: v[lane: lane + 1] for k, v in ref.items()},
                            {k: np.asarray(v)[lane: lane + 1] for k, v in out.items()}, discrete,
                            f"{what} at {eps.label(t, lane)} (lane {lane}, the file carrying its own state)", tolerance)
        except ExportVerificationError as e:
            return e
    try:  # the whole step differs but no single row does: a shape problem
        compare_outputs(ref, out, discrete, f"{what} at step {t}", tolerance)
    except ExportVerificationError as e:
        return e
    return ExportVerificationError(f"{what}: step {t} differs")  # pragma: no cover


def verify_file(agent, run: Runner, what: str, report, observations=None, reference: Optional[dict] = None) -> None:
    """The checks of a written file, by its kind; fills ``report`` (``worst_difference``,
    ``verified_observations``, the stochastic fields) or raises ``ExportVerificationError``.

    ``observations``: ``[N, *obs_shape]`` for a feed-forward policy, ``Episodes`` for a recurrent
    one (defaults: ``verification_observations``, ``verification_episodes``); ``reference``: the
    agent's deterministic outputs for them, if already computed.
    """
    from keras_trpo.export.stochastic import verify_stochastic, verify_stochastic_episodes

    if is_recurrent(agent):
        eps = observations if observations is not None else verification_episodes(agent)
        if report.stochastic:
            verify_stochastic_episodes(agent, run, what, eps, report)
        else:
            report.worst_difference = verify_episodes(agent, run, what, eps, reference).worst_difference
        report.verified_observations = eps.steps * eps.lanes
        report.verified_episodes = eps.count
        return
    obs = np.asarray(observations if observations is not None else verification_observations(agent), np.float32)
    if report.stochastic:
        verify_stochastic(agent, run, what, obs, report, reference)
    else:
        report.worst_difference = verify_against_agent(agent, run, what, obs, reference).worst_difference
    report.verified_observations = len(obs)

"""The one rollout path: a worker steps its environments for a whole fragment and returns arrays.

No TensorFlow here: the same ``RolloutWorker`` runs in the training process (``inline``), in a
worker process (``process``) or in a Ray actor (``ray``); see ``keras_trpo.rollouts.workers``.

Results do not depend on how the ``n_envs`` environments are split across workers: environment
``e`` is always reset with seed ``reset_seed + e``, draws its action noise from its own generator
(seeded by the run's seed and ``e``), and the NumPy policy computes each row exactly as it would
alone (``keras_trpo.plan.numpy_policy``). An env's action mask for each observation comes with it
(``rollouts.masks``): a masked agent samples under it and the fragment stores it with the action, so
the update's pi_old and pi_theta see the support the action was drawn from. The training process puts the fragments side by side in environment
order (``merge_fragments``) and does everything that needs the whole batch: reward scaling,
episode statistics, observation statistics.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import gymnasium as gym
import numpy as np

from keras_trpo.dict_obs import pack_dict_observations
from keras_trpo.envs import EnvSpec, make_env_group
from keras_trpo.plan.description import PolicyPlan
from keras_trpo.plan.numpy_policy import NumpyPolicy
from keras_trpo.rollouts.masks import check_env_masks, count_invalid
from keras_trpo.sequences import reset as reset_state
from keras_trpo.sampling import sampling_rule
from keras_trpo_serving.errors import InvalidActionMask
from keras_trpo.spaces import InvalidObservationError, obs_shape

# What a worker acts with: a NumPy plan (any backend) or, in the training process only, a
# function from observations to distribution parameters (the Keras model, for CNN torsos).
PolicySource = Union[PolicyPlan, Callable[[np.ndarray], dict]]


@dataclass
class Fragment:
    """``T`` steps of the ``m`` environments ``first_env .. first_env + m - 1`` of one worker."""

    first_env: int
    obs: np.ndarray  # [T, m, *obs_shape] float32, raw (the model normalises)
    actions: np.ndarray  # [T, m, *action] stored form
    rewards: np.ndarray  # [T, m] float32, as the env returned them
    terminated: np.ndarray  # [T, m] bool
    episode_end: np.ndarray  # [T, m] bool: terminated or truncated
    truncated_index: np.ndarray  # [k, 2] int64 (t, global env index) of truncated, not terminated, steps
    truncated_obs: np.ndarray  # [k, *obs_shape] their final observations
    last_obs: np.ndarray  # [m, *obs_shape] observation after the last step
    episodes: np.ndarray  # [j, 4] float64 (t, global env index, return, length) of episodes that ended
    fresh: bool = False  # the environments were (re)created for this fragment: new episodes, lost old ones
    step_s: float = 0.0  # wall time the worker spent stepping (envs and policy)
    # Recurrent policies only: the state each step's action was computed from (zeros at episode
    # starts), [T, m, S] float32, and whether the step began an episode, [T, m] bool.
    states: Optional[np.ndarray] = None
    starts: Optional[np.ndarray] = None
    # Masked agents only: the mask each step's action was drawn under, [T, m, W] bool (True = valid).
    masks: Optional[np.ndarray] = None
    # Envs that give masks: per env, the actions this fragment took that its mask forbade, [m] int64.
    invalid_actions: Optional[np.ndarray] = None

    @property
    def n_envs(self) -> int:
        return int(self.rewards.shape[1])


@dataclass
class Rollout:
    """``T`` steps of ``E`` envs, in environment order. Observations are raw (the model normalises)."""

    obs: np.ndarray  # [T, E, *obs_shape] float32
    actions: np.ndarray  # [T, E, *action] stored form
    rewards: np.ndarray  # [T, E] float32 (scaled if reward scaling is on)
    raw_rewards: np.ndarray  # [T, E] float32 as the env returned them
    terminated: np.ndarray  # [T, E] bool
    episode_end: np.ndarray  # [T, E] bool: terminated or truncated
    truncated_index: np.ndarray  # [k, 2] (t, e) of truncated, not terminated, steps, sorted
    truncated_obs: np.ndarray  # [k, *obs_shape] their final observations
    last_obs: np.ndarray  # [E, *obs_shape] observation after the last step
    episode_returns: list = field(default_factory=list)  # unscaled returns of episodes finished, by (t, e)
    episode_lengths: list = field(default_factory=list)
    fresh_envs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # envs restarted this rollout
    states: Optional[np.ndarray] = None  # [T, E, S] recurrent policies: the policy state each step started from
    starts: Optional[np.ndarray] = None  # [T, E] bool recurrent policies: the step began an episode
    masks: Optional[np.ndarray] = None  # [T, E, W] bool masked agents: the mask each action was drawn under
    invalid_actions: Optional[int] = None  # envs that give masks: actions taken that the mask forbade

    @property
    def n_steps(self) -> int:
        return int(self.rewards.size)


def env_streams(seed: int, envs: Sequence[int], epoch: int, generation: int = 0) -> list[np.random.Generator]:
    """One generator per environment, from (seed, epoch, env index, generation) only.

    ``epoch`` is the iteration a run (or a continued run) started at, ``generation`` counts
    replacements of a crashed worker, so neither a continued run nor a replacement replays noise.
    """
    return [np.random.default_rng([int(seed), int(epoch), int(e), int(generation), 0x7A9F]) for e in envs]


def _check_finite(obs: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(obs).all():
        raise InvalidObservationError(
            f"the environment returned {what} with NaN or inf; check the env (keras_trpo cannot learn from it)"
        )
    return obs


class RolloutWorker:
    """Owns environments ``first_env .. first_env + n_envs - 1`` and their random streams.

    Args:
      env: what the user passed (an id, a factory, an Env instance or a VectorEnv).
      first_env, n_envs: this worker's slice of the run's environments.
      observation_space, action_space: the run's single-env spaces.
      seed: the run's seed; ``epoch``, ``generation``: see ``env_streams``.
      reset_seed: environment ``e`` is reset with ``reset_seed + e``.
      masked: sample under the envs' action masks (the agent's ``masked``); the envs must give them.
        Whether masked or not, an env that gives masks has them checked and its forbidden actions counted.
    """

    def __init__(self, env: EnvSpec, *, first_env: int, n_envs: int, observation_space: gym.Space,
                 action_space: gym.Space, seed: int, reset_seed: int, epoch: int = 0, generation: int = 0,
                 vectorization: str = "sync", env_kwargs: Optional[dict[str, Any]] = None, masked: bool = False):
        self.first_env, self.n_envs = int(first_env), int(n_envs)
        self.obs_shape = obs_shape(observation_space)
        self.sampler = sampling_rule(action_space)
        self.group = make_env_group(env, self.n_envs, vectorization, env_kwargs)  # where the masks come from
        self.venv = pack_dict_observations(self.group, observation_space)
        if self.venv.num_envs != self.n_envs:
            raise ValueError(f"the vector env has {self.venv.num_envs} envs, the worker expected {self.n_envs}")
        envs = range(self.first_env, self.first_env + self.n_envs)
        self.rngs = env_streams(seed, envs, epoch, generation)
        obs = self.venv.reset([int(reset_seed) + e for e in envs])
        self.obs = self._obs(obs)
        # The mask of the current observations, [m, W] bool, or None if the envs give none (then never asked again).
        self.masked, self._env_steps = bool(masked), 0
        self.mask = check_env_masks(self.sampler, self.group.action_masks(), self.first_env, "after reset")
        if self.masked and self.mask is None:
            raise InvalidActionMask(
                f"this agent samples under action masks (agent.masked), but env {self.first_env} gives none after "
                "reset: it needs an action_masks() method or info['action_mask'] (or build the agent with "
                "action_masks='off')")
        self._ep_return = np.zeros(self.n_envs)
        self._ep_length = np.zeros(self.n_envs, np.int64)
        self._fresh = True
        # A recurrent policy's state per env, carried across fragments; every env starts an episode now.
        self.state: Optional[np.ndarray] = None
        self.starts = np.ones(self.n_envs, bool)

    def _obs(self, obs: Any, what: str = "an observation") -> np.ndarray:
        return _check_finite(np.asarray(obs, np.float32).reshape((self.n_envs,) + self.obs_shape), what)

    def collect(self, policy: PolicySource, n_steps: int) -> Fragment:
        """Step every environment ``n_steps`` times with actions sampled from ``policy``."""
        start = time.perf_counter()
        params_of = NumpyPolicy(policy) if isinstance(policy, PolicyPlan) else policy
        sampler, venv, m, e0 = self.sampler, self.venv, self.n_envs, self.first_env
        recurrent = isinstance(params_of, NumpyPolicy) and params_of.recurrent
        if recurrent:
            if self.state is None or self.state.shape != (m, params_of.state_size):
                self.state = params_of.initial_state(m)
            states_buf = np.empty((n_steps, m, params_of.state_size), np.float32)
            starts_buf = np.empty((n_steps, m), bool)
        # All of this fragment's noise at once, each env from its own stream: [T, m, *noise].
        noise = np.stack([sampler.draw(rng, n_steps) for rng in self.rngs], axis=1)
        obs_buf = np.empty((n_steps, m) + self.obs_shape, np.float32)
        rew_buf = np.empty((n_steps, m), np.float32)
        term_buf = np.empty((n_steps, m), bool)
        end_buf = np.empty((n_steps, m), bool)
        gives_masks = self.mask is not None
        masks_buf = np.empty((n_steps, m, self.sampler.mask_width), bool) if self.masked else None
        invalid = np.zeros(m, np.int64) if gives_masks else None
        actions = []
        trunc_idx, trunc_obs, episodes = [], [], []
        obs = self.obs
        for t in range(n_steps):
            if recurrent:
                states_buf[t] = reset_state(self.state, self.starts)
                starts_buf[t] = self.starts
                params, self.state = params_of.step(obs, self.state, self.starts)
            else:
                params = params_of(obs)
            if gives_masks:
                mask = self.mask
                action = sampler.sample(params, noise[t], mask if self.masked else None)
                invalid += count_invalid(sampler, action, mask)
                if self.masked:
                    masks_buf[t] = mask
            else:
                action = sampler.sample(params, noise[t])
            next_obs, reward, terminated, truncated, final_obs = venv.step(sampler.to_env(action))
            self._env_steps += 1
            if gives_masks:  # the next observation's (after an autoreset, the new episode's)
                self.mask = check_env_masks(sampler, self.group.action_masks(), e0, f"after step {self._env_steps}")
                if self.mask is None:
                    raise InvalidActionMask(f"env {e0} gave no action mask after step {self._env_steps} (it gave "
                                            "one before)")
            obs_buf[t] = obs
            actions.append(action)
            ended = np.logical_or(terminated, truncated)
            self._ep_return += reward
            self._ep_length += 1
            if ended.any():
                for e in np.flatnonzero(ended):
                    episodes.append((t, e0 + e, float(self._ep_return[e]), int(self._ep_length[e])))
                    if truncated[e] and not terminated[e]:
                        trunc_idx.append((t, e0 + e))
                        trunc_obs.append(final_obs[e])
                self._ep_return[ended] = 0.0
                self._ep_length[ended] = 0
            rew_buf[t] = reward
            term_buf[t] = terminated
            end_buf[t] = ended
            self.starts = ended  # the next step of an env whose episode ended begins a new one
            obs = self._obs(next_obs)
        self.obs = obs
        fresh, self._fresh = self._fresh, False
        final = (_check_finite(np.asarray(np.stack(trunc_obs), np.float32).reshape((-1,) + self.obs_shape),
                               "a final observation") if trunc_obs else np.empty((0,) + self.obs_shape, np.float32))
        return Fragment(
            first_env=e0, obs=obs_buf, actions=np.stack(actions), rewards=rew_buf, terminated=term_buf,
            episode_end=end_buf, truncated_index=np.asarray(trunc_idx, np.int64).reshape(-1, 2),
            truncated_obs=final, last_obs=obs.copy(), episodes=np.asarray(episodes, np.float64).reshape(-1, 4),
            fresh=fresh, step_s=time.perf_counter() - start,
            states=states_buf if recurrent else None, starts=starts_buf if recurrent else None,
            masks=masks_buf, invalid_actions=invalid,
        )

    def close(self) -> None:
        self.venv.close()


def merge_fragments(fragments: Sequence[Fragment], n_envs: int) -> Rollout:
    """Fragments of consecutive env slices -> one ``Rollout`` in environment order.

    Episodes and truncations are ordered by (step, env), exactly as one worker owning every
    environment would have produced them. ``rewards`` are the raw rewards (scale them after).
    """
    fragments = sorted(fragments, key=lambda f: f.first_env)
    starts = [f.first_env for f in fragments]
    expected = np.cumsum([0] + [f.n_envs for f in fragments[:-1]]).tolist()
    if starts != expected or sum(f.n_envs for f in fragments) != n_envs:
        raise ValueError(f"fragments cover envs starting at {starts}, expected {expected} for {n_envs} envs")
    cat = lambda name, axis=1: np.concatenate([getattr(f, name) for f in fragments], axis=axis)  # noqa: E731
    rewards = cat("rewards")
    trunc_index, trunc_obs = cat("truncated_index", 0), cat("truncated_obs", 0)
    order = np.lexsort((trunc_index[:, 1], trunc_index[:, 0])) if len(trunc_index) else np.zeros(0, np.int64)
    episodes = cat("episodes", 0)
    episodes = episodes[np.lexsort((episodes[:, 1], episodes[:, 0]))] if len(episodes) else episodes
    fresh = [np.arange(f.first_env, f.first_env + f.n_envs) for f in fragments if f.fresh]
    recurrent = fragments[0].states is not None
    masked = fragments[0].masks is not None
    counted = [f.invalid_actions for f in fragments if f.invalid_actions is not None]
    return Rollout(
        obs=cat("obs"), actions=cat("actions"), rewards=rewards, raw_rewards=rewards, terminated=cat("terminated"),
        episode_end=cat("episode_end"), truncated_index=trunc_index[order], truncated_obs=trunc_obs[order],
        last_obs=cat("last_obs", 0), episode_returns=episodes[:, 2].tolist(),
        episode_lengths=episodes[:, 3].astype(np.int64).tolist(),
        fresh_envs=np.concatenate(fresh) if fresh else np.zeros(0, np.int64),
        states=cat("states") if recurrent else None, starts=cat("starts") if recurrent else None,
        masks=cat("masks") if masked else None,
        invalid_actions=int(sum(int(c.sum()) for c in counted)) if counted else None,
    )


def split_envs(n_envs: int, n_workers: int) -> list[tuple[int, int]]:
    """``(first_env, count)`` per worker: ``n_envs`` split into ``n_workers`` near-equal slices."""
    if not 1 <= n_workers <= n_envs:
        raise ValueError(f"cannot split {n_envs} environments across {n_workers} workers")
    bounds = [k * n_envs // n_workers for k in range(n_workers + 1)]
    return [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(n_workers)]

"""The policy object: an agent's networks and everything that runs them outside the TRPO update.

SB3's ``ActorCriticPolicy`` / sb3-contrib's ``RecurrentActorCriticPolicy``. ``FeedForwardPolicy`` and
``RecurrentPolicy`` answer the same questions (act, predict, the distribution, what rollout workers
act with, the critic's values over a rollout, the layout of the training batch), so the agent asks
and never checks which one it has; they differ only where the networks do (the state).
"""
from __future__ import annotations

import abc
from typing import Any, Optional

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from keras_trpo.actor import Actor
from keras_trpo.config import ConfigError, TRPOConfig
from keras_trpo.dict_obs import DictObsStats, layout_of
from keras_trpo.distributions import Family, family_for
from keras_trpo.layers import ObservationNormalizer
from keras_trpo.policies.dict_networks import packed_models, push_dict_statistics
from keras_trpo.policies.networks import (TorsoSpec, build_policy_model, build_recurrent_policy_model,
                                          build_recurrent_value_model, build_value_model, check_recurrent_torso)
from keras_trpo.rollouts.buffer import TrainingBatch, flatten_steps, sequence_batch, step_batch
from keras_trpo.rollouts.worker import PolicySource, Rollout
from keras_trpo.running_stats import RunningMeanStd
from keras_trpo.spaces import check_observation_space, check_observations, obs_shape
from keras_trpo_serving.errors import InvalidActionMask

# The settings that shape the networks: fixed once they are built.
ARCHITECTURE_SETTINGS = frozenset({"hidden_sizes", "activation", "normalize_obs", "log_std_init", "ortho_init",
                                   "recurrent", "recurrent_units"})


def check_not_architecture(settings: Any, config: Optional[TRPOConfig] = None) -> None:
    """Raise if any of ``settings`` (names) shapes the networks, which exist already, or changes
    ``config``'s ``action_masks``, which was decided when the agent was built."""
    fixed = ARCHITECTURE_SETTINGS & set(settings)
    if fixed:
        raise ConfigError(f"{', '.join(sorted(fixed))} shape the networks; pass them to TRPO(...), not compile()")
    if config is not None and settings.get("action_masks", config.action_masks) != config.action_masks:
        raise ConfigError("action_masks is decided when the agent is built (agent.masked); pass it to TRPO(...), "
                          "not compile()")


# (V [T, E], V of the next state [T, E], the critic's state before each step [T, E, S] or None)
RolloutValues = tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]


class ActorCriticPolicy(abc.ABC):
    """The policy and value models of one agent, their observation statistics, and acting.

    ``policy_model`` / ``value_model`` are the Keras models (what is saved and exported);
    ``policy_net`` / ``value_net`` are what the learner and the actor call: the same models, or
    for a Dict space the models behind an adapter that unpacks the rollout's packed observations.
    ``config``: the settings the networks were built with (a subclass reads its architecture);
    ``seed``: the agent's. ``masked``: whether it acts and learns under the env's action masks
    (``TRPO.masked``); an unmasked policy refuses masks in ``predict`` and ``distribution``.
    """

    recurrent = False

    def __init__(self, observation_space: gym.Space, family: Family, policy_model: keras.Model,
                 value_model: keras.Model, config: TRPOConfig, seed: int, masked: bool = False):
        self.observation_space, self.family, self.masked = observation_space, family, bool(masked)
        self.predict_rng = np.random.default_rng(seed + 1)  # predict()'s stream (saved: a resume continues it)
        self.policy_model, self.value_model = policy_model, value_model
        self.layout = layout_of(observation_space)
        layout = self.layout
        self.obs_rms = RunningMeanStd(obs_shape(observation_space)) if layout is None else DictObsStats(layout)
        self.policy_net, self.value_net = packed_models(policy_model, value_model, self.layout)
        self.actor = Actor(self.policy_net, family)
        self.normalizers = [layer for m in (policy_model, value_model) for layer in m.layers
                            if isinstance(layer, ObservationNormalizer)]

    @classmethod
    @abc.abstractmethod
    def build_models(cls, observation_space: gym.Space, family: Family, config: TRPOConfig, torso: TorsoSpec,
                     **common: Any) -> tuple[keras.Model, keras.Model]:
        """New ``(policy_model, value_model)``; ``common``: the ``networks`` builders' shared arguments."""

    # ---- the networks ----
    @property
    def obs_keys(self) -> Optional[tuple[str, ...]]:
        """The keys of a Dict observation space in the order the models concatenate them (sorted), else None."""
        return None if self.layout is None else self.layout.keys

    @property
    def layers(self) -> list:
        return self.policy_model.layers + self.value_model.layers

    def get_weights(self) -> list[np.ndarray]:
        return self.policy_model.get_weights() + self.value_model.get_weights()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        n = len(self.policy_model.weights)
        self.policy_model.set_weights(weights[:n])
        self.value_model.set_weights(weights[n:])
        self.sync()

    def summary(self) -> None:
        self.policy_model.summary()
        self.value_model.summary()

    def sync(self) -> None:
        """Refresh the NumPy actor from the Keras weights (after an update, a load or ``set_weights``)."""
        self.actor.sync()

    # ---- observation statistics ----
    @property
    def normalizes_obs(self) -> bool:
        """Whether the models have observation normalisers (fed from ``obs_rms``)."""
        return bool(self.normalizers)

    def update_obs_statistics(self, obs: np.ndarray) -> None:
        """Take the observations ``[N, *obs_shape]`` into ``obs_rms`` and push the statistics into the models."""
        self.obs_rms.update(obs)
        self.push_obs_statistics()

    def push_obs_statistics(self) -> None:
        if isinstance(self.obs_rms, DictObsStats):
            push_dict_statistics([self.policy_model, self.value_model], self.obs_rms)
            return
        for layer in self.normalizers:
            layer.set_statistics(self.obs_rms.mean.astype(np.float32), self.obs_rms.var.astype(np.float32))

    # ---- acting ----
    def rollout_source(self) -> PolicySource:
        """What rollout workers act with: the NumPy plan, or (a torso NumPy cannot run) the Keras model."""
        return self.actor.plan if self.actor.uses_numpy else self.actor.params

    @property
    def state_size(self) -> int:
        """Length of the recurrent policy's state vector per env (0 for a feed-forward policy)."""
        return self.actor.state_size

    def initial_state(self, n: int) -> np.ndarray:
        """The zero state of ``n`` envs, ``[n, state_size]``."""
        return np.zeros((n, self.state_size), np.float32)

    @abc.abstractmethod
    def act(self, obs: np.ndarray, state: np.ndarray, starts: np.ndarray, rng: np.random.Generator,
            deterministic: bool = False, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored-form actions ``[B, ...]`` for ``obs [B, *obs_shape]`` and the state after the step
        (``state [B, S]``, zeroed where ``starts [B]``; a feed-forward policy returns it unchanged);
        ``mask``: bool ``[B, W]`` (checked) to act among the valid actions only."""

    @property
    def mask_width(self) -> Optional[int]:
        """A masked policy's mask entries per observation (the rule's layout), None if unmasked."""
        return self.family.mask_width if self.masked else None

    def check_mask(self, action_masks: Any, rows: int) -> Optional[np.ndarray]:
        """What a user passes as ``action_masks`` for ``rows`` observations -> bool ``[rows, W]`` (the rule's
        ``check_mask``: ``InvalidActionMask`` naming the problem), or None for None."""
        if action_masks is None:
            return None
        if not self.masked:
            raise InvalidActionMask("action_masks given to an agent trained without action masks (agent.masked is "
                                    "False: its env gave none, or it was built with action_masks='off')")
        return self.family.rule.check_mask(action_masks, rows)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True,
                action_masks: Any = None):
        """``TRPO.predict``: one observation or a batch, actions drawn from ``predict_rng``."""
        batch, single = check_observations(obs, self.observation_space)
        mask = self.check_mask(action_masks, len(batch))
        return self.predict_batch(batch, single, state, episode_start, deterministic, mask)

    @abc.abstractmethod
    def predict_batch(self, obs: np.ndarray, single: bool, state: Any, episode_start: Any, deterministic: bool,
                      mask: Optional[np.ndarray] = None):
        """``predict`` for the checked batch ``obs [B, *obs_shape]`` (``single``: it was one observation)
        and the checked ``mask [B, W]`` or None."""

    @abc.abstractmethod
    def distribution_params(self, obs: np.ndarray, single: bool, state: Any, episode_start: Any) -> dict:
        """The distribution's parameters ``{name: [B, k]}`` for the checked batch ``obs``."""

    def distribution(self, obs: Any, state: Any = None, episode_start: Any = None, action_masks: Any = None):
        """``TRPO.distribution``: the ``tfp`` distribution for one observation or a batch (the masked one
        under ``action_masks``)."""
        batch, single = check_observations(obs, self.observation_space)
        mask = self.check_mask(action_masks, len(batch))
        params = self.distribution_params(batch, single, state, episode_start)
        if mask is not None:
            params = self.family.masked_params(params, tf.constant(mask))
        if single:
            params = {k: v[0] for k, v in params.items()}
        return self.family.make(params)

    # ---- the critic over a rollout, and the batch the update trains on ----
    @abc.abstractmethod
    def rollout_values(self, rollout: Rollout) -> RolloutValues:
        """The critic over ``rollout``: ``(V [T, E], V of the next state [T, E], the critic's state before
        each step [T, E, S] or None)``; the next state of a truncated episode is its final observation."""

    @abc.abstractmethod
    def training_batch(self, rollout: Rollout, advantages: np.ndarray, returns: np.ndarray,
                       critic_states: Optional[np.ndarray], sequence_length: int) -> TrainingBatch:
        """The batch the update trains on (``rollouts.buffer``): ``advantages [T E]`` step-major,
        ``returns [T, E]``, ``critic_states`` from ``rollout_values``."""


class FeedForwardPolicy(ActorCriticPolicy):
    """An MLP (or any Keras torso) from the observation to the distribution's parameters; no state."""

    def __init__(self, observation_space: gym.Space, family: Family, policy_model: keras.Model,
                 value_model: keras.Model, config: TRPOConfig, seed: int, masked: bool = False):
        super().__init__(observation_space, family, policy_model, value_model, config, seed, masked)
        self._values = tf.function(lambda obs: self.value_net(obs, training=False)[:, 0], reduce_retracing=True,
                                   autograph=False)  # no control flow of its own: nothing to convert

    @classmethod
    def build_models(cls, observation_space, family, config, torso, **common):
        return (build_policy_model(observation_space, family, torso=torso, log_std_init=config.log_std_init, **common),
                build_value_model(observation_space, torso=torso, **common))

    @staticmethod
    def _no_state(state: Any, episode_start: Any) -> None:
        if state is not None or episode_start is not None:
            raise ValueError("state and episode_start are for recurrent agents; this policy is feed-forward")

    def act(self, obs, state, starts, rng, deterministic=False, mask=None):
        return self.actor.act(obs, rng, deterministic, mask), state

    def predict_batch(self, obs, single, state, episode_start, deterministic, mask=None):
        self._no_state(state, episode_start)
        actions = self.family.to_env(self.actor.act(obs, self.predict_rng, deterministic, mask))
        return actions[0] if single else actions

    def distribution_params(self, obs, single, state, episode_start):
        self._no_state(state, episode_start)
        return self.policy_net(tf.convert_to_tensor(obs), training=False)

    def values(self, obs: np.ndarray) -> np.ndarray:
        """``V(obs)``: ``[N, *obs_shape] -> [N]``."""
        return self._values(tf.convert_to_tensor(obs, tf.float32)).numpy()

    def rollout_values(self, rollout: Rollout) -> RolloutValues:
        """``(V [T, E], next V [T, E], None)``: one critic pass over every step, the truncated episodes'
        final observations and the observations after the last step."""
        r = rollout
        T, E = r.rewards.shape
        all_values = self.values(np.concatenate([flatten_steps(r.obs), r.truncated_obs, r.last_obs]))
        values = all_values[: T * E].reshape(T, E)
        next_values = np.empty_like(values)
        next_values[:-1] = values[1:]
        next_values[-1] = all_values[-E:]
        if len(r.truncated_index):
            k = len(r.truncated_index)
            next_values[r.truncated_index[:, 0], r.truncated_index[:, 1]] = all_values[T * E: T * E + k]
        return values, next_values, None

    def training_batch(self, rollout, advantages, returns, critic_states, sequence_length):
        return step_batch(rollout, advantages, returns)


class RecurrentPolicy(ActorCriticPolicy):
    """(normaliser) -> LSTM/GRU -> Dense layers -> head, with a per-env state; the critic has its own cell.

    The critic's state after the last rollout's last step is kept per env: the next rollout's
    critic pass starts from it (zeroed where an episode starts, which the model applies from ``starts``).
    """

    recurrent = True

    def __init__(self, observation_space: gym.Space, family: Family, policy_model: keras.Model,
                 value_model: keras.Model, config: TRPOConfig, seed: int, masked: bool = False):
        super().__init__(observation_space, family, policy_model, value_model, config, seed, masked)
        self.cell, self.units = config.recurrent, config.recurrent_units
        self.critic_state: Optional[np.ndarray] = None
        # Not XLA: it is called with a new shape for the bootstrap steps (their number varies), and
        # XLA would compile each one; without gradients the graph loop is cheap enough.
        self._sequence_values = tf.function(self._sequence_values_impl, reduce_retracing=True, autograph=False)

    @classmethod
    def build_models(cls, observation_space, family, config, torso, **common):
        check_recurrent_torso(torso)
        cell = dict(cell=config.recurrent, units=config.recurrent_units)
        return (build_recurrent_policy_model(observation_space, family, log_std_init=config.log_std_init, **cell,
                                             **common),
                build_recurrent_value_model(observation_space, **cell, **common))

    def _state_and_starts(self, n: int, state: Any, episode_start: Any, single: bool) -> tuple[np.ndarray, np.ndarray]:
        """``state [n, S]`` (zeros for None) and ``starts [n]`` bool, checked."""
        S = self.state_size
        if state is None:
            state = self.initial_state(n)
        state = np.asarray(state, np.float32).reshape((1, -1) if single else np.shape(state))
        if state.shape != (n, S):
            raise ValueError(f"state must have shape {(S,) if single else (n, S)} for this policy "
                             f"({self.cell}, {self.units} units), got {np.shape(state)}")
        starts = np.zeros(n, bool) if episode_start is None else np.asarray(episode_start, bool).reshape(-1)
        if starts.shape != (n,):
            raise ValueError(f"episode_start must be one flag per observation ({n}), "
                             f"got shape {np.shape(episode_start)}")
        return state, starts

    def act(self, obs, state, starts, rng, deterministic=False, mask=None):
        return self.actor.act_recurrent(obs, state, starts, rng, deterministic, mask)

    def predict_batch(self, obs, single, state, episode_start, deterministic, mask=None):
        state, starts = self._state_and_starts(len(obs), state, episode_start, single)
        stored, state = self.actor.act_recurrent(obs, state, starts, self.predict_rng, deterministic, mask)
        actions = self.family.to_env(stored)
        return (actions[0], state[0]) if single else (actions, state)

    def distribution_params(self, obs, single, state, episode_start):
        state, starts = self._state_and_starts(len(obs), state, episode_start, single)
        # One step of T = 1; a Dict agent's packed batch is unpacked by the adapter (policy_net).
        out = self.policy_net({"obs": tf.convert_to_tensor(obs[:, None]),
                               "starts": tf.convert_to_tensor(starts[:, None].astype(np.float32)),
                               "state": tf.convert_to_tensor(state)}, training=False)
        return {k: v[:, 0] for k, v in out.items() if k != "state"}

    def _sequence_values_impl(self, obs, starts, state):
        out = self.value_net({"obs": obs, "starts": starts, "state": state}, training=False)
        return out["value"][..., 0], out["states"]

    def sequence_values(self, obs: np.ndarray, starts: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The critic: ``obs [N, L, *obs_shape]``, ``starts [N, L]``, ``state [N, S]`` ->
        ``(V [N, L], states [N, L, S])``, ``states[:, t]`` the critic's state after step t."""
        v, states = self._sequence_values(*(tf.convert_to_tensor(a, tf.float32) for a in (obs, starts, state)))
        return v.numpy(), states.numpy()

    def rollout_values(self, rollout: Rollout) -> RolloutValues:
        """The critic over the rollout: ``(V [T, E], next V [T, E], critic state before each step [T, E, S])``.

        Whole fragments, one sequence per env, from the critic's state at the end of the last
        rollout (zeroed where an episode starts). The bootstrap values come from one more step each:
        the observation after the last step from the state after it (zeroed if that step ended the
        episode: the value is then not used), and a truncated episode's final observation from the
        state after its last step (the same episode, so no reset).
        """
        r = rollout
        T, E = r.rewards.shape
        per_env = lambda x: np.ascontiguousarray(np.swapaxes(x, 0, 1))  # noqa: E731 - [T, E, ...] -> [E, T, ...]
        S = int(self.value_model.get_layer("value_recurrent").state_size)
        init = self.critic_state
        if init is None or init.shape != (E, S):
            init = np.zeros((E, S), np.float32)
        v, after = self.sequence_values(per_env(r.obs), per_env(r.starts).astype(np.float32), init)
        t_idx, e_idx = r.truncated_index[:, 0], r.truncated_index[:, 1]
        boot_obs = np.concatenate([r.last_obs, r.truncated_obs])[:, None]
        boot_starts = np.concatenate([r.episode_end[-1], np.zeros(len(t_idx), bool)]).astype(np.float32)[:, None]
        boot_state = np.concatenate([after[:, -1], after[e_idx, t_idx]])
        boot, _ = self.sequence_values(boot_obs, boot_starts, boot_state)
        values = v.T
        next_values = np.empty_like(values)
        next_values[:-1] = values[1:]
        next_values[-1] = boot[:E, 0]
        next_values[t_idx, e_idx] = boot[E:, 0]
        self.critic_state = after[:, -1].copy()
        before = np.concatenate([init[None], per_env(after)[:-1]])  # [T, E, S]: the state step t starts from
        return values, next_values, before

    def training_batch(self, rollout, advantages, returns, critic_states, sequence_length):
        return sequence_batch(rollout, advantages, returns, critic_states, sequence_length)


def policy_class(config: TRPOConfig) -> type[ActorCriticPolicy]:
    return RecurrentPolicy if config.recurrent else FeedForwardPolicy


def build_policy(observation_space: gym.Space, action_space: gym.Space, config: TRPOConfig, *, seed: int,
                 torso: TorsoSpec = None, masked: bool = False) -> ActorCriticPolicy:
    """New networks for ``config`` (Keras's random seed set to ``seed`` first: the same seed, the same weights)."""
    check_observation_space(observation_space)
    family = family_for(action_space)
    keras.utils.set_random_seed(seed)
    normalize = bool(config.normalize_obs) and isinstance(observation_space, (gym.spaces.Box, gym.spaces.Dict))
    cls = policy_class(config)
    policy_model, value_model = cls.build_models(observation_space, family, config, torso, hidden=config.hidden_sizes,
                                                 activation=config.activation, seed=seed, normalize_obs=normalize,
                                                 ortho_init=config.ortho_init)
    return cls(observation_space, family, policy_model, value_model, config, seed, masked)


def policy_from_models(observation_space: gym.Space, action_space: gym.Space, config: TRPOConfig,
                       policy_model: keras.Model, value_model: keras.Model, *, seed: int,
                       masked: bool = False) -> ActorCriticPolicy:
    """The policy around loaded models."""
    return policy_class(config)(observation_space, family_for(action_space), policy_model, value_model, config, seed,
                                masked)

"""``TRPO``: the agent users build, ``compile``, ``fit``, ``evaluate``, ``predict`` and ``save``."""
from __future__ import annotations

import collections
import os
import time
from typing import Any, Optional, Sequence

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from keras_trpo import __version__
from keras_trpo.actor import Actor
from keras_trpo.callbacks import TimestepProgbar
from keras_trpo.config import ConfigError, TRPOConfig, default_config
from keras_trpo.policies.dict_networks import packed_models, push_dict_statistics
from keras_trpo.dict_obs import DictObsStats, layout_of
from keras_trpo.distributions import family_for
from keras_trpo.envs import EnvSpec, env_id_of
from keras_trpo.rollouts.gae import compute_gae
from keras_trpo.layers import ObservationNormalizer
from keras_trpo.optim.learner import Learner, minibatch_indices
from keras_trpo.policies.networks import (TorsoSpec, build_policy_model, build_recurrent_policy_model, build_recurrent_value_model,
                                 build_value_model, check_recurrent_torso)
from keras_trpo import sequences
from keras_trpo.rollouts.worker import Rollout, merge_fragments
from keras_trpo.running_stats import RewardScaler, RunningMeanStd
from keras_trpo.serialization import AgentFileError, read_agent_file, write_agent_file
from keras_trpo.spaces import check_observation_space, check_observations, obs_shape, space_from_json, space_to_json
from keras_trpo.rollouts.workers import PoolSpec, RolloutPool, make_pool


# Changing one of these in compile() restarts the rollout workers.
_POOL_SETTINGS = ("n_envs", "vectorization", "rollout_backend", "rollout_workers", "ray_address", "rollout_timeout",
                  "normalize_reward", "gamma")


def _spaces_of(env: EnvSpec) -> tuple[gym.Space, gym.Space]:
    if isinstance(env, gym.vector.VectorEnv):
        return env.single_observation_space, env.single_action_space
    if isinstance(env, gym.Env):
        return env.observation_space, env.action_space
    probe = gym.make(env) if isinstance(env, str) else env()
    try:
        return probe.observation_space, probe.action_space
    finally:
        probe.close()


class TRPO:
    """Trust Region Policy Optimization (Schulman et al. 2015) with a Keras-style API.

    Args:
      env: a gymnasium env id, an ``Env`` instance, a ``VectorEnv`` (same-step
        autoreset), or a factory returning an ``Env``.
      seed: seeds network init, env resets, action sampling and minibatches.
      torso: ``None`` for the MLP of ``hidden_sizes``, or any Keras model/layer
        mapping the (normalised) observation to features (a CNN for images); the
        value network gets a fresh clone of it.
      config: a ``TRPOConfig``, or the path of a hyperparameter file (``keras-trpo tune``'s best.yaml,
        ``keras_trpo.load_config``); by default the tuned settings for ``env``'s family.
      **hyperparameters: overrides applied on top of ``config`` (same names).
    """

    def __init__(self, env: EnvSpec, *, seed: int = 0, torso: TorsoSpec = None,
                 config: Optional[TRPOConfig | str | os.PathLike] = None,
                 env_kwargs: Optional[dict] = None, **hyperparameters: Any):
        if env is None:
            raise TypeError("TRPO needs an env: an id such as 'CartPole-v1', a gymnasium Env or VectorEnv, or a factory")
        self.env_spec = env
        self.env_id = env_id_of(env)
        self.env_kwargs = dict(env_kwargs or {})
        self.seed = int(seed)
        self.observation_space, self.action_space = _spaces_of(env)
        if isinstance(config, (str, os.PathLike)):
            from keras_trpo.config_file import load_config  # YAML is an extra: only when a file is given

            config = load_config(config, self.env_id)
        config = config or default_config(self.env_id, self.action_space)
        # An instance backs exactly one env, a VectorEnv has its own count (as in SB3).
        if isinstance(env, gym.vector.VectorEnv):
            hyperparameters.setdefault("n_envs", env.num_envs)
        elif isinstance(env, gym.Env):
            hyperparameters.setdefault("n_envs", 1)
        self.config = config.replace(**hyperparameters)
        self._torso_spec = torso
        self._init_state()
        self._build_models()
        self.compile()

    # ------------------------------------------------------------------ setup
    def _init_state(self) -> None:
        self.num_timesteps = 0
        self.iterations = 0
        self.stop_training = False
        self.history: Optional[keras.callbacks.History] = None
        self.train_function = None  # Keras callbacks (TensorBoard) look for it
        self._pool: Optional[RolloutPool] = None
        self._rng = np.random.default_rng(self.seed)  # critic minibatches; actions use per-env streams
        self._predict_rng = np.random.default_rng(self.seed + 1)
        self._episodes: collections.deque = collections.deque(maxlen=100)
        self._reward_scaler: Optional[RewardScaler] = None
        self._reward_scaler_state: Optional[dict] = None
        # Recurrent critic: its state after the last rollout's last step, per env (the next rollout
        # starts from it; zeros where an episode starts, which the model applies from `starts`).
        self._critic_state: Optional[np.ndarray] = None

    def _build_models(self) -> None:
        check_observation_space(self.observation_space)
        self.family = family_for(self.action_space)
        keras.utils.set_random_seed(self.seed)
        cfg = self.config
        common = dict(hidden=cfg.hidden_sizes, activation=cfg.activation, seed=self.seed,
                      normalize_obs=self._normalizes_obs(cfg), ortho_init=cfg.ortho_init)
        if cfg.recurrent:
            check_recurrent_torso(self._torso_spec)
            cell = dict(cell=cfg.recurrent, units=cfg.recurrent_units)
            self.policy_model = build_recurrent_policy_model(self.observation_space, self.family,
                                                             log_std_init=cfg.log_std_init, **cell, **common)
            self.value_model = build_recurrent_value_model(self.observation_space, **cell, **common)
        else:
            self.policy_model = build_policy_model(self.observation_space, self.family, torso=self._torso_spec,
                                                   log_std_init=cfg.log_std_init, **common)
            self.value_model = build_value_model(self.observation_space, torso=self._torso_spec, **common)
        self._after_models()

    @property
    def is_recurrent(self) -> bool:
        """True for a policy with an LSTM/GRU core (``recurrent="lstm"`` or ``"gru"``): it acts with a state."""
        return bool(self.config.recurrent)

    @property
    def state_size(self) -> int:
        """Length of the recurrent policy's state vector per env (0 for a feed-forward policy)."""
        return self.actor.state_size

    def _normalizes_obs(self, cfg: TRPOConfig) -> bool:
        return bool(cfg.normalize_obs) and isinstance(self.observation_space, (gym.spaces.Box, gym.spaces.Dict))

    @property
    def obs_keys(self) -> Optional[tuple[str, ...]]:
        """The keys of a Dict observation space in the order the models concatenate them (sorted), else None."""
        layout = layout_of(self.observation_space)
        return None if layout is None else layout.keys

    def _after_models(self) -> None:
        layout = layout_of(self.observation_space)
        self.obs_rms = RunningMeanStd(obs_shape(self.observation_space)) if layout is None else DictObsStats(layout)
        # What the learner and the actor call: the models themselves, or for a Dict space the models
        # behind an adapter that unpacks the rollout's packed observations (dict_networks).
        self._policy_net, self._value_net = packed_models(self.policy_model, self.value_model, layout)
        self.actor = Actor(self._policy_net, self.family)
        self._normalizers = [l for m in (self.policy_model, self.value_model) for l in m.layers
                             if isinstance(l, ObservationNormalizer)]

    def compile(self, value_optimizer: Optional[keras.optimizers.Optimizer | str] = None, **hyperparameters: Any) -> "TRPO":
        """Set hyperparameters (``TRPOConfig`` names) and the value optimizer (Adam by default).

        Architecture settings (hidden sizes, activation, normalisation) must be
        given to the constructor, since the networks already exist.
        """
        fixed = {"hidden_sizes", "activation", "normalize_obs", "log_std_init", "ortho_init", "recurrent",
                 "recurrent_units"} & set(hyperparameters)
        if fixed:
            raise ConfigError(f"{', '.join(sorted(fixed))} shape the networks; pass them to TRPO(...), not compile()")
        new = self.config.replace(**hyperparameters)
        if self._pool is not None and any(getattr(new, k) != getattr(self.config, k) for k in _POOL_SETTINGS):
            self._close_pool()  # rebuilt on the next fit with the new settings
        self.config = new
        if isinstance(value_optimizer, str):
            value_optimizer = keras.optimizers.get(value_optimizer)
        self.optimizer = value_optimizer or keras.optimizers.Adam(learning_rate=self.config.value_learning_rate,
                                                                  epsilon=self.config.value_adam_epsilon)
        self.learner = Learner(self._policy_net, self._value_net, self.family, self.config, self.optimizer)
        return self

    # ------------------------------------------------------------------ training
    def _ensure_env(self) -> None:
        """Start the rollout workers (on the configured backend) if they are not running."""
        if self._pool is not None:
            return
        env, cfg = self.env_spec, self.config
        if env is None:
            raise ValueError("this agent has no environment: pass env= to keras_trpo.load() to continue training")
        if isinstance(env, gym.vector.VectorEnv) and env.num_envs != cfg.n_envs:
            self.config = cfg = cfg.replace(n_envs=env.num_envs, rollout_workers=min(cfg.rollout_workers, env.num_envs))
        if isinstance(env, (gym.Env, gym.vector.VectorEnv)) and (cfg.rollout_backend != "inline" or cfg.rollout_workers > 1):
            raise ConfigError(
                f"an {type(env).__name__} instance lives in this process, so it needs rollout_backend='inline' and "
                f"rollout_workers=1 (got {cfg.rollout_backend!r}, {cfg.rollout_workers}); pass an env id or a factory "
                "to step environments in workers")
        if cfg.rollout_backend != "inline" and not self.actor.uses_numpy:
            raise ConfigError(
                f"rollout_backend={cfg.rollout_backend!r} sends workers a NumPy copy of the policy, which needs a Dense "
                "torso; this policy's torso is not one (a CNN?): use rollout_backend='inline'")
        # A continued run resets with a different seed and new noise so it does not replay the first episodes.
        spec = PoolSpec(env=env, observation_space=self.observation_space, action_space=self.action_space,
                        n_envs=cfg.n_envs, n_workers=cfg.rollout_workers, seed=self.seed,
                        reset_seed=self.seed + 7919 * self.iterations, epoch=self.iterations,
                        vectorization=cfg.vectorization, env_kwargs=self.env_kwargs, timeout=cfg.rollout_timeout,
                        ray_address=cfg.ray_address)
        self._pool = make_pool(spec, cfg.rollout_backend)
        if cfg.normalize_reward:
            self._reward_scaler = RewardScaler(cfg.n_envs, cfg.gamma, per_step=cfg.reward_scaling == "step")
            if self._reward_scaler_state is not None:
                self._reward_scaler.stats.load_state(self._reward_scaler_state)

    def _collect(self, n_steps: int) -> Rollout:
        """One rollout of ``n_steps`` per env from the workers, merged and reward-scaled here."""
        self._ensure_env()
        policy = self.actor.plan if self.actor.uses_numpy else self.actor.params
        rollout = merge_fragments(self._pool.collect(policy, n_steps), self.config.n_envs)
        if self._reward_scaler is not None:
            self._reward_scaler.returns[rollout.fresh_envs] = 0.0  # new episodes (first fragment, or a replaced worker)
            rollout.rewards = self._reward_scaler(rollout.raw_rewards, rollout.episode_end)
        return rollout

    def fit(self, total_timesteps: int, callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
            verbose: int = 1, reset_num_timesteps: bool = False) -> keras.callbacks.History:
        """Train for ``total_timesteps`` more environment steps (rounded up to whole iterations).

        Each TRPO iteration is a Keras "epoch": callbacks get ``on_epoch_end(iteration, logs)``
        with the logged metrics, and the returned ``History`` has one entry per iteration.
        """
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, (int, float)) or total_timesteps <= 0:
            raise ConfigError(f"total_timesteps must be a positive number, got {total_timesteps!r}")
        if reset_num_timesteps:
            self.num_timesteps = 0
        self._ensure_env()
        target = self.num_timesteps + int(total_timesteps)
        cbs = list(callbacks or [])
        if verbose:
            cbs.append(TimestepProgbar(int(total_timesteps), verbose=verbose))
        cb = keras.callbacks.CallbackList(cbs, add_history=True, model=self, verbose=verbose,
                                          epochs=None, steps=None, total_timesteps=int(total_timesteps))
        self.stop_training = False
        start_timesteps, start = self.num_timesteps, time.perf_counter()
        cb.on_train_begin()
        while self.num_timesteps < target and not self.stop_training:
            cb.on_epoch_begin(self.iterations)
            t0 = time.perf_counter()
            rollout = self._collect(self.config.n_steps)
            t1 = time.perf_counter()
            logs = self._learn(rollout)
            t2 = time.perf_counter()
            self.num_timesteps += rollout.n_steps
            self._episodes.extend(zip(rollout.episode_returns, rollout.episode_lengths))
            logs.update(self._episode_logs())
            logs.update(timesteps=float(self.num_timesteps), rollout_s=t1 - t0, update_s=t2 - t1,
                        steps_per_s=(self.num_timesteps - start_timesteps) / (t2 - start))
            cb.on_epoch_end(self.iterations, logs)
            self.iterations += 1
        cb.on_train_end()
        return self.history

    def _episode_logs(self) -> dict[str, float]:
        if not self._episodes:
            return {"mean_return": float("nan"), "mean_length": float("nan")}
        returns, lengths = zip(*self._episodes)
        return {"mean_return": float(np.mean(returns)), "mean_length": float(np.mean(lengths))}

    def _learn(self, r: Rollout) -> dict[str, float]:
        """Values, GAE, the TRPO policy step and the critic fit for one rollout."""
        cfg = self.config
        T, E = r.rewards.shape
        shape = obs_shape(self.observation_space)
        flat_obs = r.obs.reshape((T * E,) + shape)
        adapted = bool(self._normalizers) and cfg.obs_norm_init == "first_rollout" and self.obs_rms.count < 1
        if adapted:  # the first batch sets the statistics before anything is learned from it
            self.obs_rms.update(flat_obs)
            self._push_obs_stats()
        if self.is_recurrent:
            values, next_values, critic = self._recurrent_values(r)
        else:
            all_values = self.learner.values(np.concatenate([flat_obs, r.truncated_obs, r.last_obs]))
            values = all_values[: T * E].reshape(T, E)
            next_values = np.empty_like(values)
            next_values[:-1] = values[1:]
            next_values[-1] = all_values[-E:]
            if len(r.truncated_index):
                k = len(r.truncated_index)
                next_values[r.truncated_index[:, 0], r.truncated_index[:, 1]] = all_values[T * E: T * E + k]
        advantages, returns = compute_gae(r.rewards, values, next_values, r.terminated, r.episode_end,
                                          cfg.gamma, cfg.gae_lambda)
        adv = advantages.reshape(-1)
        if cfg.normalize_advantage and adv.size > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        if self.is_recurrent:
            L = sequences.check_length(T, cfg.recurrent_sequence_length)
            chunk = lambda x: sequences.to_chunks(x, L)  # noqa: E731 - [T, E, ...] -> [N, L, ...]
            starts = chunk(r.starts).astype(np.float32)
            policy_in = (chunk(r.obs), starts, sequences.chunk_initial_states(r.states, L))
            actions = chunk(r.actions).reshape((T * E,) + r.actions.shape[2:])
            logs = self.learner.policy_update(policy_in, actions, chunk(adv.reshape(T, E)).reshape(-1))
        else:
            actions = r.actions.reshape((T * E,) + r.actions.shape[2:])
            logs = self.learner.policy_update(flat_obs, actions, adv)
        if logs["step_accepted"] == 0.0:
            tf.get_logger().warning(
                f"keras_trpo: iteration {self.iterations}: line search found no step with KL <= {cfg.max_kl} "
                f"and an improved surrogate in {cfg.line_search_steps} tries; policy parameters kept"
            )
        if self.is_recurrent:  # minibatches of whole sequences, each from the critic's state before it
            value_in = (policy_in[0], starts, sequences.chunk_initial_states(critic, L))
            ret = chunk(returns)
            batches = minibatch_indices(len(ret), max(1, cfg.value_batch_size // L), cfg.value_epochs, self._rng)
            logs["value_loss"] = self.learner.value_update(value_in, ret, batches)
            ret = returns.reshape(-1)
        else:
            ret = returns.reshape(-1)
            batches = minibatch_indices(ret.size, cfg.value_batch_size, cfg.value_epochs, self._rng)
            logs["value_loss"] = self.learner.value_update(flat_obs, ret, batches)
        var_ret = np.var(ret)
        logs["explained_variance"] = float(1 - np.var(ret - values.reshape(-1)) / var_ret) if var_ret > 0 else float("nan")
        if self._normalizers and not adapted:  # statistics lag one rollout so that pi_old is the policy that acted
            self.obs_rms.update(flat_obs)
            self._push_obs_stats()
        self.actor.sync()
        return logs

    def _recurrent_values(self, r: Rollout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The recurrent critic over the rollout: ``(V [T, E], next V [T, E], critic state before each
        step [T, E, S])``.

        Whole fragments, one sequence per env, from the critic's state at the end of the last
        rollout (zeroed where an episode starts). The bootstrap values come from one more step each:
        the observation after the last step from the state after it (zeroed if that step ended the
        episode: the value is then not used), and a truncated episode's final observation from the
        state after its last step (the same episode, so no reset).
        """
        T, E = r.rewards.shape
        per_env = lambda x: np.ascontiguousarray(np.swapaxes(x, 0, 1))  # noqa: E731 - [T, E, ...] -> [E, T, ...]
        S = int(self.value_model.get_layer("value_recurrent").state_size)
        init = self._critic_state
        if init is None or init.shape != (E, S):
            init = np.zeros((E, S), np.float32)
        v, after = self.learner.sequence_values(per_env(r.obs), per_env(r.starts).astype(np.float32), init)
        t_idx, e_idx = r.truncated_index[:, 0], r.truncated_index[:, 1]
        boot_obs = np.concatenate([r.last_obs, r.truncated_obs])[:, None]
        boot_starts = np.concatenate([r.episode_end[-1], np.zeros(len(t_idx), bool)]).astype(np.float32)[:, None]
        boot_state = np.concatenate([after[:, -1], after[e_idx, t_idx]])
        boot, _ = self.learner.sequence_values(boot_obs, boot_starts, boot_state)
        values = v.T
        next_values = np.empty_like(values)
        next_values[:-1] = values[1:]
        next_values[-1] = boot[:E, 0]
        next_values[t_idx, e_idx] = boot[E:, 0]
        self._critic_state = after[:, -1].copy()
        before = np.concatenate([init[None], per_env(after)[:-1]])  # [T, E, S]: the state step t starts from
        return values, next_values, before

    def _push_obs_stats(self) -> None:
        if isinstance(self.obs_rms, DictObsStats):
            push_dict_statistics([self.policy_model, self.value_model], self.obs_rms)
            return
        for layer in self._normalizers:
            layer.set_statistics(self.obs_rms.mean.astype(np.float32), self.obs_rms.var.astype(np.float32))

    # ------------------------------------------------------------------ inference
    def predict(self, obs: Any, state: Optional[np.ndarray] = None, episode_start: Any = None,
                deterministic: bool = True):
        """Env-ready action(s) for one observation or a batch (Box actions clipped to bounds).

        A Dict agent takes a dict: ``{key: value}`` for one observation, ``{key: [B, ...]}`` for a batch.

        A recurrent agent returns ``(action, state)``, as sb3-contrib's ``RecurrentPPO.predict``:
        pass the returned state back with the next observation, and ``episode_start=True`` (per
        env, for a batch) at the first step of an episode, where the state is zeroed;
        ``state=None`` is the zero state. A feed-forward agent returns the action alone.
        """
        batch, single = check_observations(obs, self.observation_space)
        if not self.is_recurrent:
            if state is not None or episode_start is not None:
                raise ValueError("state and episode_start are for recurrent agents; this policy is feed-forward")
            actions = self.family.to_env(self.actor.act(batch, self._predict_rng, deterministic))
            return actions[0] if single else actions
        state, starts = self._state_and_starts(len(batch), state, episode_start, single)
        stored, state = self.actor.act_recurrent(batch, state, starts, self._predict_rng, deterministic)
        actions = self.family.to_env(stored)
        return (actions[0], state[0]) if single else (actions, state)

    def _state_and_starts(self, n: int, state: Any, episode_start: Any, single: bool) -> tuple[np.ndarray, np.ndarray]:
        """``state [n, S]`` (zeros for None) and ``starts [n]`` bool, checked."""
        S = self.state_size
        if state is None:
            state = np.zeros((n, S), np.float32)
        state = np.asarray(state, np.float32).reshape((1, -1) if single else np.shape(state))
        if state.shape != (n, S):
            raise ValueError(f"state must have shape {(S,) if single else (n, S)} for this policy "
                             f"({self.config.recurrent}, {self.config.recurrent_units} units), got {np.shape(state)}")
        starts = np.zeros(n, bool) if episode_start is None else np.asarray(episode_start, bool).reshape(-1)
        if starts.shape != (n,):
            raise ValueError(f"episode_start must be one flag per observation ({n}), got shape {np.shape(episode_start)}")
        return state, starts

    def distribution(self, obs: Any, state: Optional[np.ndarray] = None, episode_start: Any = None):
        """The policy's ``tfp.distributions.Distribution`` for a batch (or one) observation
        (recurrent: from ``state``, zeros for None, as ``predict``)."""
        batch, single = check_observations(obs, self.observation_space)
        if self.is_recurrent:
            state, starts = self._state_and_starts(len(batch), state, episode_start, single)
            # One step of T = 1; a Dict agent's packed batch is unpacked by the adapter (_policy_net).
            out = self._policy_net({"obs": tf.convert_to_tensor(batch[:, None]),
                                    "starts": tf.convert_to_tensor(starts[:, None].astype(np.float32)),
                                    "state": tf.convert_to_tensor(state)}, training=False)
            params = {k: v[:, 0] for k, v in out.items() if k != "state"}
        else:
            if state is not None or episode_start is not None:
                raise ValueError("state and episode_start are for recurrent agents; this policy is feed-forward")
            params = self._policy_net(tf.convert_to_tensor(batch), training=False)
        if single:
            params = {k: v[0] for k, v in params.items()}
        return self.family.make(params)

    def evaluate(self, episodes: int = 10, seed: int = 10_000, deterministic: bool = True,
                 env: Optional[EnvSpec] = None, return_episode_returns: bool = False):
        """Mean and std of the return of ``episodes`` episodes on a fresh env seeded ``seed + i``.

        Observation statistics are frozen: evaluation never changes the agent. A recurrent
        policy starts each episode from the zero state.
        """
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0:
            raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
        eval_env, owned = self._evaluation_env(env)
        rng = np.random.default_rng(seed)
        returns = []
        try:
            for i in range(episodes):
                obs, _ = eval_env.reset(seed=seed + i)
                done, total = False, 0.0
                state, start = np.zeros((1, self.state_size), np.float32), np.ones(1, bool)
                while not done:
                    batch, _ = check_observations(obs, self.observation_space, "observation from the env")
                    if self.is_recurrent:
                        stored, state = self.actor.act_recurrent(batch, state, start, rng, deterministic)
                        start = np.zeros(1, bool)
                    else:
                        stored = self.actor.act(batch, rng, deterministic)
                    action = self.family.to_env(stored)[0]
                    obs, reward, terminated, truncated, _ = eval_env.step(action)
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
        finally:
            if owned:
                eval_env.close()
        mean, std = float(np.mean(returns)), float(np.std(returns))
        return (mean, std, returns) if return_episode_returns else (mean, std)

    def _evaluation_env(self, env: Optional[EnvSpec]) -> tuple[gym.Env, bool]:
        """A fresh env to evaluate on, and whether we own (and so close) it.

        Without ``env``: the training env id or factory; a training Env instance
        is never reused, since evaluation would disturb its episode.
        """
        spec = env
        if spec is None:
            trained_on = self.env_spec
            spec = self.env_id if isinstance(trained_on, (gym.Env, gym.vector.VectorEnv)) else trained_on
        if spec is None:
            raise ValueError("evaluate needs an env: pass env= (an id, an Env or a factory)")
        if isinstance(spec, gym.vector.VectorEnv):
            raise ValueError("evaluate takes an env id, an Env or a factory, not a VectorEnv")
        if isinstance(spec, str):
            return gym.make(spec, **self.env_kwargs), True
        if isinstance(spec, gym.Env):
            return spec, False
        return spec(), True

    # ------------------------------------------------------------------ Keras-style plumbing
    @property
    def layers(self) -> list:
        return self.policy_model.layers + self.value_model.layers

    def get_weights(self) -> list[np.ndarray]:
        return self.policy_model.get_weights() + self.value_model.get_weights()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        n = len(self.policy_model.weights)
        self.policy_model.set_weights(weights[:n])
        self.value_model.set_weights(weights[n:])
        self.actor.sync()

    def get_config(self) -> dict:
        torso = None
        if isinstance(self._torso_spec, keras.layers.Layer):
            torso = keras.saving.serialize_keras_object(self._torso_spec)
        return {"env": self.env_id, "seed": self.seed, "config": self.config.to_dict(), "torso": torso,
                "env_kwargs": self.env_kwargs}

    @classmethod
    def from_config(cls, config: dict) -> "TRPO":
        torso = config.get("torso")
        if torso is not None:
            torso = keras.saving.deserialize_keras_object(torso)
        return cls(config["env"], seed=config.get("seed", 0), torso=torso,
                   config=TRPOConfig.from_dict(config["config"]), env_kwargs=config.get("env_kwargs"))

    @property
    def rollout_stats(self) -> dict[str, float]:
        """The last rollout's timings from the workers, in seconds: ``broadcast_s`` (making the
        policy available to them), ``wait_s`` (until every fragment was back), ``step_s`` (the
        slowest worker's own stepping) and ``replaced`` (workers replaced after dying)."""
        return dict(self._pool.last_stats) if self._pool is not None else {}

    def _close_pool(self) -> None:
        if self._pool is not None:
            if self._reward_scaler is not None:  # keep the statistics for the next pool
                self._reward_scaler_state = self._reward_scaler.stats.state()
                self._reward_scaler = None
            self._pool.close()
            self._pool = None

    def close(self) -> None:
        """Stop the rollout workers and close their environments (``fit`` starts them again)."""
        self._close_pool()

    def summary(self) -> None:
        self.policy_model.summary()
        self.value_model.summary()

    # ------------------------------------------------------------------ save / load
    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Write policy, value net, normaliser statistics, config and optimizer state to a ``.keras`` file."""

        if not str(filepath).endswith(".keras"):
            raise ValueError(f"agent files end in .keras, got {filepath!r}")
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath!r} exists and overwrite=False")
        state = {
            "keras_trpo_version": __version__,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "seed": self.seed,
            "config": self.config.to_dict(),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "num_timesteps": self.num_timesteps,
            "iterations": self.iterations,
            "obs_rms": self.obs_rms.state(),
            "reward_rms": (self._reward_scaler.stats.state() if self._reward_scaler else self._reward_scaler_state),
            "rng": self._rng.bit_generator.state,
            # A resume continues the 100-episode window behind mean_return and predict()'s stream.
            "episodes": [[float(r), int(n)] for r, n in self._episodes],
            "predict_rng": self._predict_rng.bit_generator.state,
        }
        opt = self.optimizer
        write_agent_file(filepath, self.policy_model, self.value_model, state,
                         keras.optimizers.serialize(opt), [np.asarray(v) for v in opt.variables])

    @classmethod
    def load(cls, filepath: str, env: Optional[EnvSpec] = None) -> "TRPO":
        parts = read_agent_file(filepath)
        s = parts["state"]
        agent = cls.__new__(cls)
        agent.env_spec = env if env is not None else s.get("env_id")
        agent.env_id = (env_id_of(env) if env is not None else None) or s.get("env_id")
        agent.env_kwargs = dict(s.get("env_kwargs") or {})
        agent.seed = int(s["seed"])
        agent.config = TRPOConfig.from_dict(s["config"])
        agent.observation_space = space_from_json(s["observation_space"])
        agent.action_space = space_from_json(s["action_space"])
        agent._torso_spec = None
        agent._init_state()
        agent.family = family_for(agent.action_space)
        agent.policy_model, agent.value_model = parts["policy"], parts["value"]
        agent._after_models()
        agent.obs_rms.load_state(s["obs_rms"])
        agent._reward_scaler_state = s.get("reward_rms")
        agent.num_timesteps, agent.iterations = int(s["num_timesteps"]), int(s["iterations"])
        agent._rng.bit_generator.state = s["rng"]
        agent._load_resume_state(s, filepath)
        optimizer = keras.optimizers.deserialize(parts["optimizer_config"])
        agent.compile(value_optimizer=optimizer)
        saved = parts["optimizer_variables"]
        if len(saved) != len(optimizer.variables):
            raise ValueError(f"{filepath!r}: optimizer state has {len(saved)} arrays, expected {len(optimizer.variables)}")
        for var, value in zip(optimizer.variables, saved):
            var.assign(value)
        return agent

    def _load_resume_state(self, s: dict, filepath: str) -> None:
        """The episode window and predict RNG; files saved before they were kept have neither
        (the window then starts empty and predict() restarts its stream, as it used to)."""
        episodes = s.get("episodes", [])
        try:
            self._episodes.extend((float(r), int(n)) for r, n in episodes)
        except (TypeError, ValueError) as e:
            raise AgentFileError(f"{filepath!r}: 'episodes' must be [return, length] pairs: {e}") from e
        if "predict_rng" in s:
            self._predict_rng.bit_generator.state = s["predict_rng"]


def load(filepath: str, env: Optional[EnvSpec] = None) -> TRPO:
    """Load an agent saved with ``TRPO.save``; pass ``env`` if it was not built from an env id."""
    return TRPO.load(filepath, env=env)

"""``TRPO``: the agent users build, ``compile``, ``fit``, ``evaluate``, ``predict`` and ``save``.

The Keras-style front of an SB3-like split: ``policies.policy`` (networks, acting), ``rollouts`` and ``optim`` work.
"""
from __future__ import annotations

import os
import time
from typing import Any, Optional, Sequence

import keras
import numpy as np

from keras_trpo import __version__
from keras_trpo.callbacks import fit_callbacks
from keras_trpo.config import ConfigError, TRPOConfig
from keras_trpo.config_file import agent_config
from keras_trpo.envs import EnvSpec, env_id_of, resolve_action_masks, spaces_of
from keras_trpo.evaluation import evaluate_policy
from keras_trpo.optim.learner import Learner, critic_optimizer
from keras_trpo.optim.train_step import train_step
from keras_trpo.policies.networks import TorsoSpec
from keras_trpo.policies.policy import build_policy, check_not_architecture, policy_from_models
from keras_trpo.rollouts.collector import RolloutCollector
from keras_trpo.rollouts.episodes import EpisodeWindow
from keras_trpo.rollouts.worker import Rollout
from keras_trpo.serialization import AgentFileError, read_agent_file, write_agent_file
from keras_trpo.spaces import space_from_json, space_to_json


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
      **hyperparameters: overrides applied on top of ``config`` (same names); ``action_masks`` is decided here.
    """

    def __init__(self, env: EnvSpec, *, seed: int = 0, torso: TorsoSpec = None,
                 config: Optional[TRPOConfig | str | os.PathLike] = None,
                 env_kwargs: Optional[dict] = None, **hyperparameters: Any):
        if env is None:
            raise TypeError("TRPO needs an env: an id such as 'CartPole-v1', a gymnasium Env or VectorEnv, or a factory")
        self.env_spec, self.env_id = env, env_id_of(env)
        self.env_kwargs, self.seed, self._torso_spec = dict(env_kwargs or {}), int(seed), torso
        self.observation_space, self.action_space = spaces_of(env)
        self.config = agent_config(config, env, self.env_id, self.action_space, hyperparameters)
        self._init_state()
        self.policy = build_policy(self.observation_space, self.action_space, self.config, seed=self.seed, torso=torso,
                                   masked=resolve_action_masks(self.config, self.action_space, env, self.env_kwargs))
        self.compile()

    def _init_state(self) -> None:
        self.num_timesteps, self.iterations, self.stop_training = 0, 0, False
        self.history, self.train_function = None, None  # fit's History; Keras callbacks look for train_function
        self._rollouts = RolloutCollector()
        self._rng = np.random.default_rng(self.seed)  # critic minibatches; actions use per-env streams
        self._episodes = EpisodeWindow()  # (return, length) of the last 100 episodes: mean_return

    # What the exports, the command line and the tests read from the agent: its policy's.
    family = property(lambda self: self.policy.family)
    policy_model = property(lambda self: self.policy.policy_model)
    value_model = property(lambda self: self.policy.value_model)
    actor = property(lambda self: self.policy.actor)
    obs_rms = property(lambda self: self.policy.obs_rms)
    layers = property(lambda self: self.policy.layers)
    is_recurrent = property(lambda self: self.policy.recurrent, doc="True for a policy with an LSTM/GRU core.")
    state_size = property(lambda self: self.policy.state_size, doc="The recurrent state's length (0: feed-forward).")
    obs_keys = property(lambda self: self.policy.obs_keys, doc="A Dict space's keys in the models' order, else None.")
    masked = property(lambda self: self.policy.masked, doc="Whether it acts and learns under the env's action masks.")
    mask_width = property(lambda self: self.policy.mask_width, doc="Mask entries per observation (None: unmasked).")

    def compile(self, value_optimizer: Optional[keras.optimizers.Optimizer | str] = None, **hyperparameters: Any) -> "TRPO":
        """Set hyperparameters (``TRPOConfig`` names) and the value optimizer (Adam by default).

        Architecture settings (hidden sizes, activation, normalisation) must be
        given to the constructor, since the networks already exist.
        """
        check_not_architecture(hyperparameters, self.config)
        new = self.config.replace(**hyperparameters)
        self._rollouts.reconfigure(self.config, new)  # the workers restart on the next fit if they must change
        self.config = new
        self.optimizer = critic_optimizer(value_optimizer, self.config)
        self.learner = Learner(self.policy.policy_net, self.policy.value_net, self.family, self.config, self.optimizer)
        return self

    def _ensure_env(self) -> None:
        """Start the rollout workers (on the configured backend) if they are not running."""
        if not self._rollouts.running:
            self.config = self._rollouts.start(
                self.env_spec, self.observation_space, self.action_space, self.config, seed=self.seed,
                iterations=self.iterations, env_kwargs=self.env_kwargs, policy=self.policy)

    def _collect(self, n_steps: int) -> Rollout:
        """One rollout of ``n_steps`` per env from the workers, merged and reward-scaled."""
        self._ensure_env()
        return self._rollouts.collect(self.policy.rollout_source(), n_steps, self.config.n_envs)

    def _learn(self, rollout: Rollout) -> dict[str, float]:
        """Values, GAE, the TRPO policy step and the critic fit for one rollout."""
        return train_step(self.policy, self.learner, rollout, self.config, self._rng, self.iterations)

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
        cb = fit_callbacks(callbacks, self, int(total_timesteps), verbose)
        self.stop_training = False
        start_timesteps, start = self.num_timesteps, time.perf_counter()
        cb.on_train_begin()
        while self.num_timesteps < target and not self.stop_training:
            cb.on_epoch_begin(self.iterations)
            self.learner.schedule_max_kl((self.num_timesteps - start_timesteps) / total_timesteps)
            t0 = time.perf_counter()
            rollout = self._collect(self.config.n_steps)
            t1, logs = time.perf_counter(), self._learn(rollout)
            t2 = time.perf_counter()
            self.num_timesteps += rollout.n_steps
            self._episodes.add(rollout)
            logs.update(self._episodes.logs())
            logs.update(timesteps=float(self.num_timesteps), rollout_s=t1 - t0, update_s=t2 - t1,
                        steps_per_s=(self.num_timesteps - start_timesteps) / (t2 - start))
            cb.on_epoch_end(self.iterations, logs)
            self.iterations += 1
        cb.on_train_end()
        return self.history

    def predict(self, obs: Any, state: Optional[np.ndarray] = None, episode_start: Any = None,
                deterministic: bool = True, action_masks: Any = None):
        """Env-ready action(s) for one observation or a batch (Box actions clipped to bounds).

        A Dict agent takes a dict: ``{key: value}`` for one observation, ``{key: [B, ...]}`` for a batch.

        A recurrent agent returns ``(action, state)``, as sb3-contrib's ``RecurrentPPO.predict``: pass the returned
        state back with the next observation, and ``episode_start=True`` (per env, for a batch) at the first step
        of an episode, where the state is zeroed; ``state=None`` is the zero state. A feed-forward agent returns the
        action alone. A masked agent takes MaskablePPO's ``action_masks``: ``[mask_width]`` or ``[B, mask_width]``.
        """
        return self.policy.predict(obs, state, episode_start, deterministic, action_masks)

    def distribution(self, obs: Any, state: Optional[np.ndarray] = None, episode_start: Any = None, action_masks=None):
        """The policy's ``tfp.distributions.Distribution`` for a batch (or one) observation
        (recurrent: from ``state``, zeros for None, as ``predict``; masked by ``action_masks`` as there)."""
        return self.policy.distribution(obs, state, episode_start, action_masks)

    def evaluate(self, episodes: int = 10, seed: int = 10_000, deterministic: bool = True,
                 env: Optional[EnvSpec] = None, return_episode_returns: bool = False, return_invalid_actions: bool = False):
        """Mean and std of the return of ``episodes`` episodes on a fresh env seeded ``seed + i``, then as asked
        the returns and the count of actions the env's masks forbade (None: no masks). Observation statistics stay
        frozen; a recurrent policy starts each episode from the zero state, a masked one acts under the masks."""
        return evaluate_policy(self.policy, episodes, seed, deterministic, env, trained_on=self.env_spec,
                               env_id=self.env_id, env_kwargs=self.env_kwargs,
                               results=(return_episode_returns, return_invalid_actions))

    def get_weights(self) -> list[np.ndarray]:
        return self.policy.get_weights()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.policy.set_weights(weights)

    def get_config(self) -> dict:
        torso = self._torso_spec  # only a Keras layer or model is serialisable (None builds the MLP)
        torso = keras.saving.serialize_keras_object(torso) if isinstance(torso, keras.layers.Layer) else None
        return {"env": self.env_id, "seed": self.seed, "config": self.config.to_dict(), "torso": torso,
                "env_kwargs": self.env_kwargs}

    @classmethod
    def from_config(cls, config: dict) -> "TRPO":
        torso = config.get("torso")
        return cls(config["env"], seed=config.get("seed", 0),
                   torso=None if torso is None else keras.saving.deserialize_keras_object(torso),
                   config=TRPOConfig.from_dict(config["config"]), env_kwargs=config.get("env_kwargs"))

    @property
    def rollout_stats(self) -> dict[str, float]:
        """The last rollout's timings from the workers in seconds (``RolloutPool.last_stats``)."""
        return self._rollouts.last_stats

    def close(self) -> None:
        """Stop the rollout workers and close their environments (``fit`` starts them again)."""
        self._rollouts.close()

    def summary(self) -> None:
        self.policy.summary()

    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Write policy, value net, normaliser statistics, config and optimizer state to a ``.keras`` file."""
        if not str(filepath).endswith(".keras"):
            raise ValueError(f"agent files end in .keras, got {filepath!r}")
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath!r} exists and overwrite=False")
        state = {"keras_trpo_version": __version__, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
                 "seed": self.seed, "config": self.config.to_dict(),
                 "observation_space": space_to_json(self.observation_space),
                 "action_space": space_to_json(self.action_space), "num_timesteps": self.num_timesteps,
                 "iterations": self.iterations, "obs_rms": self.obs_rms.state(), "masked": self.masked,
                 "reward_rms": self._rollouts.reward_state(), "rng": self._rng.bit_generator.state,
                 # A resume continues the 100-episode window behind mean_return and predict()'s stream.
                 "episodes": self._episodes.state(), "predict_rng": self.policy.predict_rng.bit_generator.state}
        opt = self.optimizer
        write_agent_file(filepath, self.policy_model, self.value_model, state, keras.optimizers.serialize(opt),
                         [np.asarray(v) for v in opt.variables])

    @classmethod
    def load(cls, filepath: str, env: Optional[EnvSpec] = None) -> "TRPO":
        parts = read_agent_file(filepath)
        s = parts["state"]
        agent = cls.__new__(cls)
        agent.env_spec = env if env is not None else s.get("env_id")
        agent.env_id = (env_id_of(env) if env is not None else None) or s.get("env_id")
        agent.env_kwargs, agent.seed, agent._torso_spec = dict(s.get("env_kwargs") or {}), int(s["seed"]), None
        agent.config = TRPOConfig.from_dict(s["config"])
        agent.observation_space, agent.action_space = map(space_from_json, (s["observation_space"], s["action_space"]))
        agent._init_state()
        agent.policy = policy_from_models(agent.observation_space, agent.action_space, agent.config, parts["policy"],
                                          parts["value"], seed=agent.seed, masked=s.get("masked", False))
        agent.obs_rms.load_state(s["obs_rms"])
        agent._rollouts = RolloutCollector(reward_state=s.get("reward_rms"))
        agent.num_timesteps, agent.iterations = int(s["num_timesteps"]), int(s["iterations"])
        agent._rng.bit_generator.state = s["rng"]
        try:  # files saved before the episode window and predict()'s stream were kept have neither
            agent._episodes.load_state(s.get("episodes", []))
        except ValueError as e:
            raise AgentFileError(f"{filepath!r}: {e}") from e
        if "predict_rng" in s:
            agent.policy.predict_rng.bit_generator.state = s["predict_rng"]
        agent.compile(value_optimizer=keras.optimizers.deserialize(parts["optimizer_config"]))
        agent.learner.load_optimizer_variables(parts["optimizer_variables"], filepath)
        return agent


def load(filepath: str, env: Optional[EnvSpec] = None) -> TRPO:
    """Load an agent saved with ``TRPO.save``; pass ``env`` if it was not built from an env id."""
    return TRPO.load(filepath, env=env)

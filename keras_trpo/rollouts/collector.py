"""An agent's rollout workers and the reward scaling between them and the update."""
from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym

from keras_trpo.config import ConfigError, TRPOConfig
from keras_trpo.envs import EnvSpec
from keras_trpo.rollouts.buffer import scale_rewards
from keras_trpo.rollouts.worker import PolicySource, Rollout, merge_fragments
from keras_trpo.rollouts.workers import PoolSpec, RolloutPool, make_pool
from keras_trpo.running_stats import RewardScaler

# Changing one of these (compile()) restarts the rollout workers.
POOL_SETTINGS = ("n_envs", "vectorization", "rollout_backend", "rollout_workers", "ray_address", "rollout_timeout",
                 "normalize_reward", "gamma")


class RolloutCollector:
    """Starts the workers on the configured backend and returns their fragments merged and reward-scaled.

    The reward scaler lives as long as the workers (its running discounted returns are theirs);
    its statistics outlive them (``reward_state``: a restarted pool, a saved agent).
    """

    def __init__(self, reward_state: Optional[dict] = None):
        self.pool: Optional[RolloutPool] = None
        self.reward_scaler: Optional[RewardScaler] = None
        self._reward_state = reward_state

    @property
    def running(self) -> bool:
        return self.pool is not None

    def start(self, env: EnvSpec, observation_space: gym.Space, action_space: gym.Space, config: TRPOConfig, *,
              seed: int, iterations: int, env_kwargs: dict[str, Any], numpy_policy: bool,
              masked: bool = False) -> TRPOConfig:
        """Start the workers; returns the config they run with (a VectorEnv brings its own env count).

        ``iterations``: the run's iterations so far (a continued run resets its envs with a different
        seed and draws new noise, so it does not replay the first episodes); ``numpy_policy``: whether
        the policy has a NumPy copy, which the process and ray backends need; ``masked``: sample under the
        envs' action masks.
        """
        cfg = config
        if env is None:
            raise ValueError("this agent has no environment: pass env= to keras_trpo.load() to continue training")
        if isinstance(env, gym.vector.VectorEnv) and env.num_envs != cfg.n_envs:
            cfg = cfg.replace(n_envs=env.num_envs, rollout_workers=min(cfg.rollout_workers, env.num_envs))
        in_process = isinstance(env, (gym.Env, gym.vector.VectorEnv))
        if in_process and (cfg.rollout_backend != "inline" or cfg.rollout_workers > 1):
            raise ConfigError(
                f"an {type(env).__name__} instance lives in this process, so it needs rollout_backend='inline' and "
                f"rollout_workers=1 (got {cfg.rollout_backend!r}, {cfg.rollout_workers}); pass an env id or a "
                "factory to step environments in workers")
        if cfg.rollout_backend != "inline" and not numpy_policy:
            raise ConfigError(
                f"rollout_backend={cfg.rollout_backend!r} sends workers a NumPy copy of the policy, which needs a "
                "Dense torso; this policy's torso is not one (a CNN?): use rollout_backend='inline'")
        spec = PoolSpec(env=env, observation_space=observation_space, action_space=action_space,
                        n_envs=cfg.n_envs, n_workers=cfg.rollout_workers, seed=seed,
                        reset_seed=seed + 7919 * iterations, epoch=iterations,
                        vectorization=cfg.vectorization, env_kwargs=env_kwargs, timeout=cfg.rollout_timeout,
                        ray_address=cfg.ray_address, masked=masked)
        self.pool = make_pool(spec, cfg.rollout_backend)
        if cfg.normalize_reward:
            self.reward_scaler = RewardScaler(cfg.n_envs, cfg.gamma, per_step=cfg.reward_scaling == "step")
            if self._reward_state is not None:
                self.reward_scaler.stats.load_state(self._reward_state)
        return cfg

    def collect(self, policy: PolicySource, n_steps: int, n_envs: int) -> Rollout:
        """One rollout of ``n_steps`` in each of the ``n_envs`` envs, acting with ``policy``."""
        rollout = merge_fragments(self.pool.collect(policy, n_steps), n_envs)
        return rollout if self.reward_scaler is None else scale_rewards(rollout, self.reward_scaler)

    def reconfigure(self, old: TRPOConfig, new: TRPOConfig) -> None:
        """Stop the workers if ``new`` changes how they run (the next ``start`` uses it)."""
        if self.pool is not None and any(getattr(new, k) != getattr(old, k) for k in POOL_SETTINGS):
            self.close()

    def reward_state(self) -> Optional[dict]:
        """The reward scaler's statistics (``RunningMeanStd.state``), or None if rewards were never scaled."""
        return self.reward_scaler.stats.state() if self.reward_scaler is not None else self._reward_state

    @property
    def last_stats(self) -> dict[str, float]:
        return dict(self.pool.last_stats) if self.pool is not None else {}

    def close(self) -> None:
        """Stop the workers and close their environments; the reward statistics are kept."""
        if self.pool is not None:
            if self.reward_scaler is not None:
                self._reward_state = self.reward_scaler.stats.state()
                self.reward_scaler = None
            self.pool.close()
            self.pool = None

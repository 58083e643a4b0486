"""Turning what the user passes (an id, an Env, a VectorEnv, a factory) into environments to step."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

import keras_trpo.joint_limits  # noqa: F401 - registers JointLimits-v0 and JointLimitsMemory-v0 (masked actions)
import keras_trpo.pomdp  # noqa: F401 - registers CartPoleNoVel-v1 and PendulumNoVel-v1 wherever envs are made

EnvSpec = Union[str, gym.Env, gym.vector.VectorEnv, Callable[[], gym.Env]]
VECTORIZATION = ("sync", "async")


def action_space_of(env_id: str, **env_kwargs: Any) -> gym.Space:
    """The action space of a registered env (made once, then closed)."""
    env = gym.make(env_id, **env_kwargs)
    try:
        return env.action_space
    finally:
        env.close()


def env_id_of(env: EnvSpec) -> Optional[str]:
    """The registered id of an env spec, if it has one (used to rebuild envs after load)."""
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


def _factory(env: EnvSpec, n_envs: int, env_kwargs: Optional[dict[str, Any]]) -> Callable[[], gym.Env]:
    """A function that makes one env from an id, an Env instance (only for one env) or a factory."""
    if isinstance(env, str):
        kwargs = dict(env_kwargs or {})
        return lambda: gym.make(env, **kwargs)
    if isinstance(env, gym.Env):
        if n_envs != 1:
            raise ValueError(
                f"an Env instance can only back n_envs=1 (got n_envs={n_envs}); pass an env id or a factory for more"
            )
        return lambda: env
    if callable(env):
        return env
    raise TypeError(f"env must be an id, a gymnasium Env or VectorEnv, or a factory; got {type(env).__name__}")


def make_vec_env(env: EnvSpec, n_envs: int, vectorization: str = "sync", env_kwargs: Optional[dict[str, Any]] = None) -> gym.vector.VectorEnv:
    """A vector env of ``n_envs`` copies that auto-resets in the same step.

    Same-step autoreset puts the last observation of a finished episode in
    ``info["final_obs"]``, which truncation bootstrapping needs.
    """
    if vectorization not in VECTORIZATION:
        raise ValueError(f"vectorization must be one of {VECTORIZATION}, got {vectorization!r}")
    if isinstance(env, gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP.value):
            raise ValueError(
                "a VectorEnv passed to keras_trpo must use autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP "
                f"(got {mode}); it needs the final observation of truncated episodes"
            )
        return env
    factory = _factory(env, n_envs, env_kwargs)
    fns = [factory] * n_envs
    if vectorization == "async" and not isinstance(env, gym.Env):  # an instance cannot be moved to a subprocess
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


# What one step of a group of envs gives back: observations (a list or an array, one per env),
# rewards [n] float64, terminated [n] bool, truncated [n] bool, and {env: final observation} for
# the envs whose episode ended (they have been reset: the observation returned is the new one).
GroupStep = tuple[Sequence[Any], np.ndarray, np.ndarray, np.ndarray, dict[int, Any]]


class EnvList:
    """``n`` envs stepped one after the other with same-step autoreset.

    What ``SyncVectorEnv(autoreset_mode=SAME_STEP)`` does, step for step and seed for seed,
    without merging every step's info dicts into arrays (on Hopper that merge cost as much as a
    third of the env step, and the rollout uses none of it).
    """

    def __init__(self, envs: list[gym.Env]):
        self.envs, self.num_envs = envs, len(envs)

    def reset(self, seeds: Sequence[int]) -> list[Any]:
        return [env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds)]

    def step(self, actions: np.ndarray) -> GroupStep:
        n = self.num_envs
        obs, rewards = [None] * n, np.empty(n, np.float64)
        terminated, truncated = np.empty(n, bool), np.empty(n, bool)
        final: dict[int, Any] = {}
        for i, env in enumerate(self.envs):
            o, rewards[i], terminated[i], truncated[i], _ = env.step(actions[i])
            if terminated[i] or truncated[i]:
                final[i] = o
                o, _ = env.reset()
            obs[i] = o
        return obs, rewards, terminated, truncated, final

    def close(self) -> None:
        for env in self.envs:
            env.close()


class VectorEnvGroup:
    """A gymnasium ``VectorEnv`` (same-step autoreset) behind ``EnvList``'s interface."""

    def __init__(self, venv: gym.vector.VectorEnv):
        self.venv, self.num_envs = venv, venv.num_envs

    def reset(self, seeds: Sequence[int]) -> Any:
        return self.venv.reset(seed=[int(s) for s in seeds])[0]

    def step(self, actions: np.ndarray) -> GroupStep:
        obs, rewards, terminated, truncated, info = self.venv.step(actions)
        ended = np.logical_or(terminated, truncated)
        final = {int(i): info["final_obs"][i] for i in np.flatnonzero(ended)}
        return obs, np.asarray(rewards, np.float64), np.asarray(terminated, bool), np.asarray(truncated, bool), final

    def close(self) -> None:
        self.venv.close()


def make_env_group(env: EnvSpec, n_envs: int, vectorization: str = "sync",
                   env_kwargs: Optional[dict[str, Any]] = None) -> Union[EnvList, VectorEnvGroup]:
    """The envs a rollout worker steps: a plain list for ``sync``, a VectorEnv when one was given
    or ``async`` asked for (one subprocess per env)."""
    if vectorization not in VECTORIZATION:
        raise ValueError(f"vectorization must be one of {VECTORIZATION}, got {vectorization!r}")
    if isinstance(env, gym.vector.VectorEnv) or (vectorization == "async" and not isinstance(env, gym.Env)):
        return VectorEnvGroup(make_vec_env(env, n_envs, vectorization, env_kwargs))
    factory = _factory(env, n_envs, env_kwargs)
    return EnvList([factory() for _ in range(n_envs)])


def spaces_of(env: EnvSpec) -> tuple[gym.Space, gym.Space]:
    """The single-env ``(observation_space, action_space)`` of an env id, Env, VectorEnv or factory
    (an id or a factory is made once to ask, then closed)."""
    if isinstance(env, gym.vector.VectorEnv):
        return env.single_observation_space, env.single_action_space
    if isinstance(env, gym.Env):
        return env.observation_space, env.action_space
    probe = gym.make(env) if isinstance(env, str) else env()
    try:
        return probe.observation_space, probe.action_space
    finally:
        probe.close()

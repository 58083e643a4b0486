"""Turning what the user passes (an id, an Env, a VectorEnv, a factory) into a vector env."""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import gymnasium as gym
from gymnasium.vector import AutoresetMode

EnvSpec = Union[str, gym.Env, gym.vector.VectorEnv, Callable[[], gym.Env]]
VECTORIZATION = ("sync", "async")


def env_id_of(env: EnvSpec) -> Optional[str]:
    """The registered id of an env spec, if it has one (used to rebuild envs after load)."""
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


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
    if isinstance(env, str):
        kwargs = dict(env_kwargs or {})
        factory = lambda: gym.make(env, **kwargs)  # noqa: E731
    elif isinstance(env, gym.Env):
        if n_envs != 1:
            raise ValueError(
                f"an Env instance can only back n_envs=1 (got n_envs={n_envs}); pass an env id or a factory for more"
            )
        instance = env
        factory = lambda: instance  # noqa: E731
        vectorization = "sync"  # an instance cannot be moved to a subprocess
    elif callable(env):
        factory = env
    else:
        raise TypeError(f"env must be an id, a gymnasium Env or VectorEnv, or a factory; got {type(env).__name__}")
    fns = [factory] * n_envs
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)

"""Turning what the user passes (an id, an Env, a VectorEnv, a factory) into environments to step."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

import keras_trpo.joint_limits  # noqa: F401 - registers JointLimits-v0 and JointLimitsMemory-v0 (masked actions)
import keras_trpo.pomdp  # noqa: F401 - registers CartPoleNoVel-v1 and PendulumNoVel-v1 wherever envs are made
from keras_trpo.config import ConfigError
from keras_trpo.sampling import sampling_rule
from keras_trpo_serving.action_masks import INFO_KEY, MaskSource, has_masks

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

    ``action_masks()``: each env's mask for its current observation (after an autoreset, the new
    episode's), from its ``MaskSource`` (the ``action_masks()`` method wins over ``info["action_mask"]``).
    """

    def __init__(self, envs: list[gym.Env]):
        self.envs, self.num_envs = envs, len(envs)
        self._sources = [MaskSource(env) for env in envs]
        self._infos: list[Any] = [None] * self.num_envs  # the info of each env's current observation

    def reset(self, seeds: Sequence[int]) -> list[Any]:
        obs = []
        for i, (env, s) in enumerate(zip(self.envs, seeds)):
            o, self._infos[i] = env.reset(seed=int(s))
            obs.append(o)
        return obs

    def step(self, actions: np.ndarray) -> GroupStep:
        n = self.num_envs
        obs, rewards = [None] * n, np.empty(n, np.float64)
        terminated, truncated = np.empty(n, bool), np.empty(n, bool)
        final: dict[int, Any] = {}
        for i, env in enumerate(self.envs):
            o, rewards[i], terminated[i], truncated[i], info = env.step(actions[i])
            if terminated[i] or truncated[i]:
                final[i] = o
                o, info = env.reset()
            obs[i], self._infos[i] = o, info
        return obs, rewards, terminated, truncated, final

    def action_masks(self) -> list[Optional[np.ndarray]]:
        """Each env's mask as it gives it (unchecked), None for an env that gives none."""
        return [source(info) for source, info in zip(self._sources, self._infos)]

    def close(self) -> None:
        for env in self.envs:
            env.close()


class VectorEnvGroup:
    """A gymnasium ``VectorEnv`` (same-step autoreset) behind ``EnvList``'s interface.

    Masks: the sub-envs' ``action_masks()`` through ``call`` (found through wrappers, as ``MaskSource``
    finds it), else the vector info's ``"action_mask"`` rows (after a same-step autoreset the sub-env's
    reset info, so the new episode's mask).
    """

    def __init__(self, venv: gym.vector.VectorEnv):
        self.venv, self.num_envs = venv, venv.num_envs
        self._info: Any = {}
        self._method: Optional[bool] = None  # whether the sub-envs have action_masks(): asked after the first reset

    def reset(self, seeds: Sequence[int]) -> Any:
        obs, self._info = self.venv.reset(seed=[int(s) for s in seeds])
        if self._method is None:
            # Asked with has_wrapper_attr first: an AsyncVectorEnv shuts down a worker whose call raises.
            # ``call`` returns a non-callable attribute's value: None is "no method", as MaskSource has it.
            self._method = (all(self.venv.call("has_wrapper_attr", "action_masks"))
                            and all(m is not None for m in self.venv.call("action_masks")))
        return obs

    def action_masks(self) -> list[Optional[np.ndarray]]:
        """Each sub-env's mask as it gives it (unchecked), None for one that gives none."""
        if self._method:
            return [np.asarray(m) for m in self.venv.call("action_masks")]
        info = self._info if isinstance(self._info, dict) else {}
        if INFO_KEY not in info:
            return [None] * self.num_envs
        rows, present = np.asarray(info[INFO_KEY]), info.get("_" + INFO_KEY)
        return [rows[i] if present is None or present[i] else None for i in range(self.num_envs)]

    def step(self, actions: np.ndarray) -> GroupStep:
        obs, rewards, terminated, truncated, info = self.venv.step(actions)
        self._info = info
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


class EnvMakeError(ValueError):
    """An env that cannot be made (an unregistered id, a missing extra), with gymnasium's own error."""


def probe_spaces(env: EnvSpec) -> tuple[gym.Space, gym.Space]:
    """``spaces_of``, for a request checked before anything else starts (the commands, ``tune``): whatever
    making the env raises becomes an ``EnvMakeError`` that names the env."""
    try:
        return spaces_of(env)
    except Exception as e:  # noqa: BLE001 - gymnasium's errors, a missing extra's ImportError, a factory's own
        raise EnvMakeError(f"cannot make the env {env!r}: {type(e).__name__}: {e}") from None


def gives_action_masks(env: EnvSpec, env_kwargs: Optional[dict[str, Any]] = None) -> bool:
    """Whether ``env`` gives action masks (``MaskSource``'s two conventions), asked of one env: an
    ``action_masks`` method, or ``info["action_mask"]`` after a ``reset``. An id or a factory is made
    once to ask, then closed; an Env or VectorEnv given by the user is asked as it is (a VectorEnv is
    reset, as its rollout will reset it again with the run's seeds)."""
    if isinstance(env, gym.vector.VectorEnv):
        group = VectorEnvGroup(env)
        group.reset(list(range(env.num_envs)))
        return any(m is not None for m in group.action_masks())
    if isinstance(env, gym.Env):
        return has_masks(env) or has_masks(env, env.reset()[1])
    probe = gym.make(env, **dict(env_kwargs or {})) if isinstance(env, str) else env()
    try:
        return has_masks(probe) or has_masks(probe, probe.reset()[1])
    finally:
        probe.close()


def resolve_action_masks(config: Any, action_space: gym.Space, env: EnvSpec,
                         env_kwargs: Optional[dict[str, Any]] = None) -> bool:
    """Whether an agent samples under action masks (``agent.masked``), from ``TRPOConfig.action_masks``:
    "off" never; "auto" when the action space can be masked and the env gives masks
    (``gives_action_masks``; a Box action space is not asked, as masks mean nothing to it); "on" always,
    and a ``ConfigError`` saying why if the space cannot be masked (Box) or the env gives none.
    ``config``: a ``TRPOConfig``."""
    setting = config.action_masks
    if setting == "off":
        return False
    if sampling_rule(action_space).mask_width is None:
        if setting == "on":
            raise ConfigError(f"action_masks='on', but the action space {action_space} cannot be masked: masks are for "
                              "Discrete, MultiDiscrete and MultiBinary actions")
        return False
    gives = gives_action_masks(env, env_kwargs)
    if setting == "on" and not gives:
        name = env if isinstance(env, str) else type(env).__name__
        raise ConfigError(f"action_masks='on', but {name} gives no action masks: it needs an action_masks() method "
                          "(sb3-contrib's convention, found through wrappers) or info['action_mask'] from reset and "
                          "step (gymnasium's); use action_masks='auto' or 'off' to train without")
    return gives

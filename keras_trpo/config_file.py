"""Hyperparameter files: what ``keras-trpo tune`` writes and ``train --config FILE`` / ``load_config`` read.

A file is YAML (``.yaml`` / ``.yml``, what rl-baselines3-zoo users know; needs PyYAML, the
``tune`` extra) or JSON (``.json``, standard library), with these top-level keys only::

    env: Pendulum-v1        # optional: the env the settings were made for
    timesteps: 100000       # optional: the training budget they were made for
    config:                 # TRPOConfig fields (keras_trpo names); the rest keep the env's preset
      gamma: 0.98
      max_kl: 0.02

Anything else, at the top or under ``config``, is a ``ConfigError`` naming the key. Safe loading
only (``yaml.safe_load``): a file cannot build Python objects. Standard library and gymnasium
only, no TensorFlow, so the command line can read a file before deciding to import it.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import gymnasium as gym

from keras_trpo.config import ConfigError, TRPOConfig, default_config
from keras_trpo_serving.files import atomic_write_text

TOP_LEVEL_KEYS = ("env", "timesteps", "config")
# Where an agent runs, not how it learns: a machine's business, never written to a file (cli.ROLLOUT_FLAGS too).
MACHINE_FIELDS = ("vectorization", "rollout_backend", "rollout_workers", "ray_address", "rollout_timeout")
PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """A parsed hyperparameter file: ``settings`` are TRPOConfig overrides (checked names)."""

    path: str
    settings: Mapping[str, Any]
    env: Optional[str] = None
    timesteps: Optional[int] = None


def require_yaml():
    """PyYAML's module, or a ``ConfigError`` that says how to install it (the ``tune`` extra)."""
    try:
        import yaml
    except ImportError:
        raise ConfigError("YAML hyperparameter files need PyYAML: pip install 'keras-trpo[tune]' (or pyyaml), "
                          "or write the file as .json") from None
    return yaml


def _is_yaml(path: PathLike) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return True
    if suffix == ".json":
        return False
    raise ConfigError(f"{path}: a hyperparameter file ends in .yaml, .yml or .json")


def read_config_file(path: PathLike) -> ConfigFile:
    """Parse and check ``path`` (names only: values are checked by ``TRPOConfig.validate``)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read hyperparameter file {path}: {e.strerror or e}") from None
    try:
        data = require_yaml().safe_load(text) if _is_yaml(path) else json.loads(text)
    except (ValueError, ConfigError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    except Exception as e:  # noqa: BLE001 - yaml.YAMLError, without importing yaml to name it
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, got {type(data).__name__}")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} (a hyperparameter file has {', '.join(TOP_LEVEL_KEYS)}; "
                              "hyperparameters go under config:)")
    settings = data.get("config") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: config: must be a mapping of TRPOConfig fields, got {type(settings).__name__}")
    fields = {f.name for f in dataclasses.fields(TRPOConfig)}
    for key in settings:
        if key not in fields:
            raise ConfigError(f"{path}: unknown hyperparameter {key!r} under config: (not a TRPOConfig field)")
    env = data.get("env")
    if env is not None and not isinstance(env, str):
        raise ConfigError(f"{path}: env: must be a gymnasium env id, got {env!r}")
    timesteps = data.get("timesteps")
    if timesteps is not None:
        if isinstance(timesteps, bool) or not isinstance(timesteps, (int, float)) or not timesteps > 0:
            raise ConfigError(f"{path}: timesteps: must be a positive number, got {timesteps!r}")
        timesteps = int(timesteps)
    return ConfigFile(str(path), dict(settings), env, timesteps)


def config_from_settings(settings: Mapping[str, Any], env_id: Optional[str], action_space=None,
                         presets: str = "keras-trpo") -> TRPOConfig:
    """The env's preset (``default_config``; ``presets``: "keras-trpo" or "zoo") with ``settings`` on top, checked."""
    from keras_trpo.config import default_config

    if env_id is not None and action_space is None:
        from keras_trpo.envs import action_space_of

        action_space = action_space_of(env_id)
    d = dict(settings)
    if "hidden_sizes" in d:
        d["hidden_sizes"] = tuple(d["hidden_sizes"])
    return default_config(env_id, action_space, presets).replace(**d)


def load_config(path: PathLike, env: Optional[str] = None) -> TRPOConfig:
    """The ``TRPOConfig`` a hyperparameter file describes, for ``TRPO(env, config=load_config(path))``.

    Fields the file does not set keep the preset of ``env`` (default: the file's ``env:``), as
    ``keras-trpo train --env ENV`` would have them; a file written by ``keras-trpo tune`` sets
    every field, so it means the same whatever the presets become.
    """
    f = read_config_file(path)
    return config_from_settings(f.settings, env or f.env)


def config_settings(config: TRPOConfig) -> dict[str, Any]:
    """Every field of ``config`` that decides learning (``MACHINE_FIELDS`` left out), as plain data."""
    return {k: v for k, v in config.to_dict().items() if k not in MACHINE_FIELDS}


def write_config_file(path: PathLike, config: Union[TRPOConfig, Mapping[str, Any]], env: Optional[str] = None,
                      timesteps: Optional[int] = None, comment: str = "") -> None:
    """Write a hyperparameter file atomically (YAML or JSON by its suffix); ``comment`` heads a YAML file."""
    settings = config_settings(config) if isinstance(config, TRPOConfig) else dict(config)
    data: dict[str, Any] = {}
    if env is not None:
        data["env"] = env
    if timesteps is not None:
        data["timesteps"] = int(timesteps)
    data["config"] = settings
    if _is_yaml(path):
        head = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
        text = head + require_yaml().safe_dump(data, sort_keys=False, default_flow_style=None)
    else:
        text = json.dumps(data, indent=1) + "\n"
    atomic_write_text(path, text)


def agent_config(config: Optional[TRPOConfig | str | os.PathLike], env: Any, env_id: Optional[str],
                 action_space: gym.Space, overrides: dict[str, Any]) -> TRPOConfig:
    """The config ``TRPO(env, config=config, **overrides)`` trains with.

    ``config``: a ``TRPOConfig``, the path of a hyperparameter file, or None for ``default_config``.
    An Env instance backs exactly one env and a VectorEnv brings its own count (as in SB3), unless
    ``overrides`` sets ``n_envs``.
    """
    if isinstance(config, (str, os.PathLike)):
        config = load_config(config, env_id)
    config = config or default_config(env_id, action_space)
    overrides = dict(overrides)
    if isinstance(env, gym.vector.VectorEnv):
        overrides.setdefault("n_envs", env.num_envs)
    elif isinstance(env, gym.Env):
        overrides.setdefault("n_envs", 1)
    return config.replace(**overrides)

"""The search space: rl-baselines3-zoo's TRPO space in ``TRPOConfig`` names, and the user's changes to it.

``ZOO_TRPO_SPACE`` is the zoo's ``sample_trpo_params`` (``rl_zoo3/hyperparams_opt.py``) dimension by
dimension, renamed as ``keras_trpo.presets.RENAMED`` renames its presets:

=====================  ==========================  ============================================
zoo                    keras_trpo (Optuna name)    values
=====================  ==========================  ============================================
batch_size             value_batch_size            8 .. 512 (capped at n_steps, as the zoo does)
n_steps                n_steps                     8 .. 2048
gamma                  gamma                       0.9 .. 0.9999
learning_rate          value_learning_rate         1e-5 .. 1, log-uniform
n_critic_updates       value_epochs                5 .. 30
cg_max_steps           cg_iters                    5 .. 30
target_kl              max_kl_per_dim              0.001 .. 0.1; ``max_kl`` = it x the action dimension
gae_lambda             gae_lambda                  0.8 .. 1.0
net_arch small/medium  hidden_sizes                [64, 64] or [256, 256]
activation_fn          activation                  tanh or relu
=====================  ==========================  ============================================

The zoo's ``ortho_init=False`` has no counterpart (keras_trpo always initialises orthogonally).
``max_kl_per_dim`` keeps the presets' convention (``keras_trpo.config.default_config``): the zoo's
``target_kl`` bounds the KL per action dimension, keras_trpo's ``max_kl`` the whole action's, so for
a Box action of dimension d ``max_kl = max_kl_per_dim * d`` (``cg_damping_per_dim`` likewise).

A dimension is changed or added with a spec (``--space KEY=SPEC`` or a YAML/JSON file of KEY: SPEC):

* a list, ``[0.9, 0.99]``: one of these values (Optuna's categorical);
* ``float:LOW:HIGH`` or ``float:LOW:HIGH:log``, ``int:LOW:HIGH`` or ``int:LOW:HIGH:log``: a range;
* ``off``: not searched (the setting keeps its preset, or its ``--set`` value).

A key is any ``TRPOConfig`` field, or ``max_kl_per_dim`` / ``cg_damping_per_dim``. A field fixed with
``--set`` is never searched. The space is plain data (``to_dict``/``from_dict``), stored with the
study so that every worker, on any machine, searches the same one.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping, Optional, Sequence, Union

from keras_trpo.config import ConfigError, TRPOConfig

PER_DIM = {"max_kl_per_dim": "max_kl", "cg_damping_per_dim": "cg_damping"}  # scaled by the action dimension
OFF = "off"


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched setting: ``kind`` is ``categorical`` (``choices``), ``float`` or ``int`` (``low``..``high``)."""

    kind: str
    choices: tuple = ()
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"kind": self.kind, "choices": [list(c) if isinstance(c, tuple) else c for c in self.choices]}
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Dimension":
        if d["kind"] == "categorical":
            return cls("categorical", tuple(tuple(c) if isinstance(c, list) else c for c in d["choices"]))
        return cls(d["kind"], low=d["low"], high=d["high"], log=bool(d.get("log", False)))

    def describe(self) -> str:
        if self.kind == "categorical":
            return "one of " + ", ".join(json.dumps(list(c) if isinstance(c, tuple) else c) for c in self.choices)
        return f"{self.kind} {self.low:g} .. {self.high:g}" + (" (log)" if self.log else "")


def categorical(*choices: Any) -> Dimension:
    return Dimension("categorical", tuple(choices))


ZOO_TRPO_SPACE: dict[str, Dimension] = {
    "value_batch_size": categorical(8, 16, 32, 64, 128, 256, 512),
    "n_steps": categorical(8, 16, 32, 64, 128, 256, 512, 1024, 2048),
    "gamma": categorical(0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999),
    "value_learning_rate": Dimension("float", low=1e-5, high=1.0, log=True),
    "value_epochs": categorical(5, 10, 20, 25, 30),
    "cg_iters": categorical(5, 10, 20, 25, 30),
    "max_kl_per_dim": categorical(0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.001),
    "gae_lambda": categorical(0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0),
    "hidden_sizes": categorical((64, 64), (256, 256)),
    "activation": categorical("tanh", "relu"),
}

# Added to the space when the trials' policy is recurrent (the env's preset, or --set recurrent=lstm|gru): the
# cell's size, as the zoo's RecurrentPPO sampler searches lstm_hidden_size, and the update's sequence length
# (keras_trpo's own; 0 is whole fragments). Powers of two divide every n_steps above that they are shorter than.
RECURRENT_SPACE: dict[str, Dimension] = {
    "recurrent_units": categorical(16, 32, 64, 128, 256),
    "recurrent_sequence_length": categorical(16, 32, 64, 128, 0),
}


def field_of(name: str) -> str:
    """The TRPOConfig field a dimension sets."""
    return PER_DIM.get(name, name)


def check_name(name: str) -> None:
    fields = {f.name for f in dataclasses.fields(TRPOConfig)}
    if name not in fields and name not in PER_DIM:
        raise ConfigError(f"unknown search-space key {name!r}: use a TRPOConfig field or "
                          f"{' / '.join(PER_DIM)}")


def parse_spec(name: str, spec: Any) -> Optional[Dimension]:
    """A dimension from a spec (see the module docstring); ``None`` for ``off``."""
    check_name(name)
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == OFF:
            return None
        if text.startswith("["):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--space {name}: {text!r} is not a JSON list ({e})") from None
        else:
            parts = text.split(":")
            if parts[0] not in ("float", "int") or len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "log"):
                raise ConfigError(f"--space {name}: {text!r} is not a spec; use a list [a, b, ...], "
                                  "float:LOW:HIGH[:log], int:LOW:HIGH[:log] or off")
            try:
                low, high = (float(p) if parts[0] == "float" else int(p) for p in parts[1:3])
            except ValueError:
                raise ConfigError(f"--space {name}: bounds of {text!r} are not {parts[0]}s") from None
            if not low < high or (len(parts) == 4 and low <= 0):
                raise ConfigError(f"--space {name}: need LOW < HIGH (and LOW > 0 for log), got {text!r}")
            return Dimension(parts[0], low=low, high=high, log=len(parts) == 4)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(f"--space {name}: an empty list of choices")
        return Dimension("categorical", tuple(tuple(c) if isinstance(c, list) else c for c in spec))
    raise ConfigError(f"--space {name}: {spec!r} is not a spec; use a list, float:LOW:HIGH[:log], "
                      "int:LOW:HIGH[:log] or off")


def build_space(changes: Mapping[str, Any] = (), fixed: Sequence[str] = (),
                base: Optional[Mapping[str, Dimension]] = None, recurrent: bool = False) -> dict[str, Dimension]:
    """``base`` (the zoo's space, with ``RECURRENT_SPACE`` for a ``recurrent`` policy) with ``changes``
    (KEY -> spec) applied and ``fixed`` fields left out."""
    space = dict(ZOO_TRPO_SPACE if base is None else base)
    if recurrent:
        space.update(RECURRENT_SPACE)
    for name, spec in dict(changes).items():
        dim = parse_spec(name, spec)
        for other in [k for k in space if k != name and field_of(k) == field_of(name)]:
            del space[other]  # max_kl replaces max_kl_per_dim, and the other way round
        if dim is None:
            space.pop(name, None)
        else:
            space[name] = dim
    for name in list(space):
        if field_of(name) in fixed:
            del space[name]
    return space


def space_to_dict(space: Mapping[str, Dimension]) -> dict[str, Any]:
    return {name: dim.to_dict() for name, dim in space.items()}


def space_from_dict(d: Mapping[str, Any]) -> dict[str, Dimension]:
    return {name: Dimension.from_dict(v) for name, v in d.items()}


def _token(choice: Any) -> Union[None, bool, int, float, str]:
    """Optuna's categorical values must be None, bool, int, float or str: lists travel as JSON text."""
    return json.dumps(list(choice)) if isinstance(choice, (tuple, list)) else choice


def suggest(trial, space: Mapping[str, Dimension], action_dim: int) -> dict[str, Any]:
    """Sample every dimension with ``trial`` and return the TRPOConfig settings they make."""
    sampled: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.kind == "categorical":
            value = trial.suggest_categorical(name, [_token(c) for c in dim.choices])
            if isinstance(value, str) and value.startswith("["):
                value = tuple(json.loads(value))
        elif dim.kind == "float":
            value = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        else:
            value = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        sampled[name] = value
    return settings_from_params(sampled, action_dim)


def settings_from_params(params: Mapping[str, Any], action_dim: int) -> dict[str, Any]:
    """Optuna's parameters (space names) -> TRPOConfig settings, the per-dimension KLs scaled by ``action_dim``."""
    settings: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, str) and value.startswith("["):
            value = tuple(json.loads(value))
        if name in PER_DIM:
            value = round(float(value) * action_dim, 12)
        settings[field_of(name)] = value
    return settings


def cap_batch(settings: Mapping[str, Any], n_steps: int) -> dict[str, Any]:
    """The zoo's rule: a sampled critic minibatch is at most ``n_steps`` (the trial's, sampled or not)."""
    out = dict(settings)
    if "value_batch_size" in out:
        out["value_batch_size"] = min(int(out["value_batch_size"]), int(n_steps))
    return out


def action_dim(action_space) -> int:
    """d for the per-dimension KL convention: the size of a Box action, 1 otherwise (as default_config)."""
    import gymnasium as gym

    if isinstance(action_space, gym.spaces.Box):
        return int(math.prod(action_space.shape))
    return 1

"""Hyperparameters: one dataclass, and the per-env defaults built from rl-baselines3-zoo's presets."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import gymnasium as gym

from keras_trpo.presets import (KERAS_TRPO_SOURCE, SB3_DEFAULTS_SOURCE, SB3_FIELDS, env_family,  # noqa: F401 - env_family is public here too
                                own_preset, preset)


class ConfigError(ValueError):
    """A hyperparameter with a value TRPO cannot use."""


FISHER_PRODUCTS = ("hvp", "gauss_newton")
MAX_KL_SCHEDULES = ("constant", "linear")
LINE_SEARCH_KLS = ("old_new", "new_old")
REWARD_SCALINGS = ("rollout", "step")
OBS_NORM_INITS = ("identity", "first_rollout")
ROLLOUT_BACKENDS = ("inline", "process", "ray")
RECURRENT_CELLS = ("lstm", "gru")
ACTION_MASKS = ("auto", "on", "off")


@dataclass
class TRPOConfig:
    """Everything that decides how an agent learns (not where: env and seed live on the agent).

    Defaults are sb3-contrib's TRPO defaults; ``default_config(env_id)`` applies
    rl-baselines3-zoo's TRPO preset for the env (``keras_trpo.presets``).
    """

    n_envs: int = 1
    n_steps: int = 2048  # per env per iteration
    gamma: float = 0.99
    gae_lambda: float = 0.95
    max_kl: float = 0.01  # trust-region radius delta
    # "linear": the radius falls with each fit's progress, from max_kl to 0 at its last step (the zoo's lin_
    # schedules; what settles CartPoleNoVel's final policy, issue 28); "constant": max_kl throughout.
    max_kl_schedule: str = "constant"
    # An entropy bonus in the surrogate, E[ratio A] + entropy_coef E[H(pi)] (OpenAI baselines' TRPO entcoeff;
    # sb3-contrib's TRPO has none): against a policy that turns deterministic before it has learned (issue
    # 28's CartPoleNoVel plateau). 0 leaves the update's graph exactly as it was.
    entropy_coef: float = 0.0
    cg_iters: int = 15
    cg_damping: float = 0.1
    cg_residual_tol: float = 1e-10
    line_search_steps: int = 10
    line_search_shrink: float = 0.8
    # Which KL the line search bounds: "old_new" is KL(pi_old || pi_new), the paper's constraint;
    # "new_old" is KL(pi_new || pi_old), what sb3-contrib tests. Same Fisher, different step sizes.
    line_search_kl: str = "old_new"
    value_learning_rate: float = 1e-3
    value_epochs: int = 10  # passes over the rollout per iteration
    value_batch_size: int = 128
    value_adam_epsilon: float = 1e-7  # Keras's Adam default; sb3-contrib's critic has SB3's 1e-5
    normalize_advantage: bool = True
    normalize_obs: bool = False
    normalize_reward: bool = False
    # "rollout": the return statistics take in a whole rollout, then scale it (one NumPy pass);
    # "step": updated and applied step by step, as SB3's VecNormalize does.
    reward_scaling: str = "rollout"
    obs_clip: float = 10.0
    # Where the observation statistics start. "first_rollout" (default): the first rollout's observations set
    # them before the first update (Keras's Normalization.adapt), as SB3's VecNormalize has statistics from
    # the first step on; the initial policy's near-zero head makes the policy that acted and pi_old differ by
    # KL ~3e-5 there. "identity" (0.1.0's default): mean 0, variance 1, so the first update is learned on raw
    # observations and the statistics then jump to the data's, which moved the Hopper policy by half a
    # trust region (benchmarks/README.md, issue 17's finding).
    obs_norm_init: str = "first_rollout"
    hidden_sizes: tuple = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    vectorization: str = "sync"  # or "async": one subprocess per env
    jit_compile: bool = True  # XLA for the update functions
    fisher_product: str = "hvp"  # "hvp" (nested tapes) or "gauss_newton" (JVP then VJP)
    # The Fisher-vector products (and the step's scale) use every k-th sample of the batch, as in the TRPO
    # paper and sb3-contrib's sub_sampling_factor; the gradient and the line search use all of it.
    fisher_subsample: int = 1
    # Where the rollout runs; the result is the same whichever is chosen (see keras_trpo/rollouts/workers).
    rollout_backend: str = "inline"  # "inline", "process" or "ray"
    rollout_workers: int = 1  # the n_envs environments are split across this many workers
    ray_address: Optional[str] = None  # None: start a local Ray; "auto" or "host:port": join a cluster
    rollout_timeout: float = 600.0  # seconds a worker may take for one fragment before it is an error
    # SB3's policy_kwargs ortho_init: orthogonal Dense init (gains sqrt(2), 0.01 policy head, 1 value
    # head; zero biases), or False for PyTorch's nn.Linear default, as SB3 then keeps (networks.py).
    ortho_init: bool = True
    # A recurrent core for partially observable tasks: None (feed-forward), "lstm" or "gru". The policy
    # and the value network each get one of recurrent_units between the observation and hidden_sizes.
    recurrent: Optional[str] = None
    recurrent_units: int = 64
    # Steps per sequence in the update, at most n_steps. Each env's fragment of n_steps is cut into
    # n_steps / L sequences that start from the states stored during the rollout (RecurrentPPO's way; the
    # policy's outputs are exactly the acting ones, gradients stop at the cuts); 0 is whole fragments.
    # 128 because the cell's loop is sequential: on 4 envs x 1024 steps (LSTM 64) the policy step took
    # 4.0 s as whole fragments, 0.7 s in sequences of 128, 0.5 s of 64 (sequences.py has the numbers).
    recurrent_sequence_length: int = 128
    # Invalid-action masking (Discrete, MultiDiscrete, MultiBinary actions): "auto" masks when the env gives
    # masks (an action_masks() method, or info["action_mask"]), "on" requires them (an error if the env
    # gives none), "off" ignores them (the unmasked baseline). Decided once, when the agent is built.
    action_masks: str = "auto"

    def validate(self) -> "TRPOConfig":
        def positive(name, integer=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and int(v) != v) or not v > 0:
                raise ConfigError(f"{name} must be a positive {'integer' if integer else 'number'}, got {v!r}")

        for name in ("n_envs", "n_steps", "cg_iters", "line_search_steps", "value_epochs", "value_batch_size",
                     "fisher_subsample"):
            positive(name, integer=True)
        for name in ("max_kl", "value_learning_rate", "obs_clip"):
            positive(name)
        for name in ("gamma", "gae_lambda"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {v!r}")
        if (isinstance(self.entropy_coef, bool) or not isinstance(self.entropy_coef, (int, float))
                or not 0.0 <= self.entropy_coef < math.inf):
            raise ConfigError(f"entropy_coef must be a number >= 0 (0: no entropy bonus), got {self.entropy_coef!r}")
        if not 0.0 < self.line_search_shrink < 1.0:
            raise ConfigError(f"line_search_shrink must be in (0, 1), got {self.line_search_shrink!r}")
        if self.cg_damping < 0 or self.cg_residual_tol < 0:
            raise ConfigError("cg_damping and cg_residual_tol must be >= 0")
        if self.vectorization not in ("sync", "async"):
            raise ConfigError(f"vectorization must be 'sync' or 'async', got {self.vectorization!r}")
        positive("value_adam_epsilon")
        for name, allowed in (("line_search_kl", LINE_SEARCH_KLS), ("reward_scaling", REWARD_SCALINGS),
                              ("obs_norm_init", OBS_NORM_INITS), ("max_kl_schedule", MAX_KL_SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.fisher_product not in FISHER_PRODUCTS:
            raise ConfigError(f"fisher_product must be one of {FISHER_PRODUCTS}, got {self.fisher_product!r}")
        if self.rollout_backend not in ROLLOUT_BACKENDS:
            raise ConfigError(f"rollout_backend must be one of {ROLLOUT_BACKENDS}, got {self.rollout_backend!r}")
        positive("rollout_workers", integer=True)
        positive("rollout_timeout")
        if self.rollout_workers > self.n_envs:
            raise ConfigError(f"rollout_workers ({self.rollout_workers}) cannot exceed n_envs ({self.n_envs}): each worker "
                              "steps at least one environment; raise n_envs (--set n_envs=N on the command line; it "
                              "changes the batch, n_envs * n_steps) or use fewer workers")
        if self.ray_address is not None and not isinstance(self.ray_address, str):
            raise ConfigError(f"ray_address must be a string such as 'auto' or 'host:port', got {self.ray_address!r}")
        if not isinstance(self.ortho_init, bool):
            raise ConfigError(f"ortho_init must be True or False, got {self.ortho_init!r}")
        if self.recurrent is not None and self.recurrent not in RECURRENT_CELLS:
            raise ConfigError(f"recurrent must be None (feed-forward), 'lstm' or 'gru', got {self.recurrent!r}")
        positive("recurrent_units", integer=True)
        length = self.recurrent_sequence_length
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ConfigError(f"recurrent_sequence_length must be 0 (whole fragments) or a positive integer, got {length!r}")
        if self.recurrent is not None and 0 < length < self.n_steps and self.n_steps % length:
            raise ConfigError(f"recurrent_sequence_length ({length}) must divide n_steps ({self.n_steps}) so that every "
                              "sequence has the same length; choose a divisor, or 0 for whole fragments of n_steps")
        if self.recurrent is not None and self.fisher_product == "gauss_newton":
            raise ConfigError("fisher_product='gauss_newton' does not work with a recurrent policy (TensorFlow's "
                              "forward-mode JVP cannot go through the cell's while loop); use fisher_product='hvp'")
        if self.action_masks not in ACTION_MASKS:
            raise ConfigError(f"action_masks must be one of {ACTION_MASKS} ('auto': use the env's masks when it gives "
                              f"them, 'on': require them, 'off': ignore them), got {self.action_masks!r}")
        if not self.hidden_sizes or any(int(h) <= 0 for h in self.hidden_sizes):
            raise ConfigError(f"hidden_sizes must be positive layer widths, got {self.hidden_sizes!r}")
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        return self

    def replace(self, **changes: Any) -> "TRPOConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TRPOConfig":
        d = dict(d)
        if "hidden_sizes" in d:
            d["hidden_sizes"] = tuple(d["hidden_sizes"])
        return cls().replace(**d)


def _scaled_for_box(action_space: Optional[gym.Space]) -> int:
    """The action dimension d that sb3-contrib's per-dimension KL numbers are multiplied by (1: no scaling)."""
    if isinstance(action_space, gym.spaces.Box):
        return int(math.prod(action_space.shape))
    return 1


def default_config(env_id: Optional[str], action_space: Optional[gym.Space] = None,
                   presets: str = "keras-trpo") -> TRPOConfig:
    """The preset for ``env_id``: rl-baselines3-zoo's TRPO entry for it, else its family's default,
    with keras-trpo's own preset for the env on top (``keras_trpo.presets.KERAS_TRPO_PRESETS``: found
    by ``keras-trpo tune``, adopted by ten seeds) unless ``presets="zoo"``.

    Where each value comes from (``explain_config`` lists it field by field):

    * an env the zoo's ``hyperparams/trpo.yml`` lists (``keras_trpo.presets.ZOO_TRPO``, the file
      as data), or another version of one (Hopper-v5 uses the zoo's Hopper-v4): exactly that
      entry, translated to ``TRPOConfig`` names (``keras_trpo.presets.RENAMED``); keys with no
      counterpart here (``use_sde``: keras_trpo has no gSDE) are dropped;
    * another ``gymnasium.envs.mujoco`` env: the zoo's MuJoCo defaults;
    * anything else: sb3-contrib's TRPO defaults, which are ``TRPOConfig``'s own.

    The zoo's numbers are sb3-contrib's, and for a diagonal Gaussian sb3-contrib takes the
    mean of the KL over action dimensions as well as states: its ``target_kl`` bounds the
    KL per action dimension, and its Fisher (hence the relative weight of ``cg_damping``)
    is divided by the action dimension d. keras_trpo bounds the KL of the whole action
    distribution, as in the paper, so for a Box action space with d dimensions the same
    trust region and the same CG problem are ``max_kl = target_kl * d`` and
    ``cg_damping = cg_damping * d``. Without ``action_space`` the zoo's numbers are returned
    as they are.
    """
    own = own_preset(env_id, presets)
    cfg = TRPOConfig(**{**preset(env_id).settings, **(own.settings if own is not None else {})})
    d = _scaled_for_box(action_space)
    if d != 1:
        cfg = dataclasses.replace(cfg, max_kl=round(cfg.max_kl * d, 12), cg_damping=round(cfg.cg_damping * d, 12))
    return cfg.validate()


def explain_config(env_id: Optional[str], action_space: Optional[gym.Space] = None,
                   presets: str = "keras-trpo") -> list[tuple[str, Any, str]]:
    """``(field, value, where it comes from)`` for every field of ``default_config(env_id, action_space,
    presets)``: a keras-trpo preset (with its study and adoption), the zoo's entry, or a library default."""
    p, own = preset(env_id), own_preset(env_id, presets)
    cfg = default_config(env_id, action_space, presets)
    d = _scaled_for_box(action_space)
    rows = []
    for f in dataclasses.fields(TRPOConfig):
        value = getattr(cfg, f.name)
        where = p.origin.get(f.name, SB3_DEFAULTS_SOURCE if f.name in SB3_FIELDS else KERAS_TRPO_SOURCE)
        if own is not None and f.name in own.settings:
            where = own.origin(f.name)
        if f.name in ("max_kl", "cg_damping") and d != 1:
            zoo_name = "target_kl" if f.name == "max_kl" else "cg_damping"
            where += f"; {zoo_name} x {d} action dimensions (per-dimension KL convention, see default_config)"
        rows.append((f.name, value, where))
    return rows

"""What an export needs to know about the agent, read from it once: ``describe(agent)``.

Every format adapter (ONNX, ORT, LiteRT, TFLite Micro, SavedModel, C) and the verification take
the ``PolicyDescription`` and never the agent: the graph's inputs by name and order, the Dict
layout, the observation and action spaces, the noise of a stochastic file, the recurrent state,
the facts the metadata records, the action mask input of a masked policy (``mask_width``) and the
policy plan (the arrays the C export renders). The
fields are NumPy, gymnasium and plain Python (``sample`` is the agent's TF-free sampling rule,
keras_trpo_serving/sampling.py, fed the noise of a stochastic file), except two handles on the
trained agent that only some modules use: ``model`` (the Keras policy model: ``graph.py``
converts it and ``reference.py`` runs it) and ``predict`` (acting in the env, for the rollouts
the verification observes: ``observations.py``).
"""
from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import gymnasium as gym
import numpy as np

from keras_trpo.dict_obs import DictLayout, layout_of
from keras_trpo.export.c_model import c_policy
from keras_trpo.export.errors import ExportError
from keras_trpo.export.inputs import ACTION_MASK, NOISE, OBS, STATE_IN, check_key_names
from keras_trpo.export.noise import NoiseSpec, noise_spec
from keras_trpo.plan.description import PolicyPlan
from keras_trpo.spaces import obs_shape
from keras_trpo_serving.sampling import SamplingRule

AGENT_ATTRIBUTES = ("policy_model", "family", "observation_space", "action_space")
Params = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class PolicyDescription:
    """One agent's policy as every export sees it (built by ``describe``; see the module doc)."""

    family: str  # "categorical", "multi_categorical", "bernoulli" or "diag_gaussian"
    param_names: tuple[str, ...]  # ("logits",) or ("mean", "log_std")
    observation_space: gym.Space
    action_space: gym.Space
    layout: Optional[DictLayout]  # a Dict space's packed layout (keras_trpo.dict_obs), else None
    observation_names: tuple[str, ...]  # ("obs",), or a Dict space's keys in sorted order
    observation_shapes: Mapping[str, tuple[int, ...]]  # per observation input, without the batch axis
    recurrent: str  # "lstm", "gru" or "" (feed-forward)
    state_size: int  # S of state_in / state_out, 0 for a feed-forward policy
    noise: NoiseSpec  # the noise input of a stochastic file (keras_trpo/export/noise.py)
    # The normaliser's statistics (mean, var) per observation input: observations are sampled around them.
    observation_stats: Mapping[str, tuple[np.ndarray, np.ndarray]]
    env_id: Optional[str]  # None for an env given as a constructor: no rollouts then
    env_kwargs: Mapping[str, Any]
    normalizes_observations: bool
    trained_timesteps: int
    described_at: str  # UTC, ISO 8601 to the second: the metadata's exported_at
    model: Any = field(repr=False)  # the Keras policy model
    # The agent's predict(obs[, state, episode_start][, action_masks=]): action_masks only if it takes masks.
    predict: Callable = field(repr=False)
    # (params, noise[, mask]) -> env action: the agent's sampling rule (keras_trpo_serving/sampling.py), TF-free
    sample: Callable[..., np.ndarray] = field(repr=False)
    plan: Optional[PolicyPlan] = field(default=None, repr=False)  # the policy as arrays; None if C cannot express it
    plan_error: Optional[str] = None  # why there is no plan
    # The action_mask input's width W (the rule's mask_width), None when the files take no mask.
    mask_width: Optional[int] = None
    rule: Optional[SamplingRule] = field(default=None, repr=False)  # the action family's sampling rule
    agent_masked: bool = False  # whether the agent itself acts with masks (its predict takes action_masks)

    @property
    def is_recurrent(self) -> bool:
        return bool(self.recurrent)

    @property
    def discrete_actions(self) -> bool:
        """Whether actions are integers (compared for equality, not to a tolerance)."""
        return self.family != "diag_gaussian"

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """One observation as rollouts store it: the space's shape, a Dict's packed ``(width,)``."""
        return obs_shape(self.observation_space)

    @property
    def masked(self) -> bool:
        """Whether the files take ``action_mask`` (keras_trpo/export/inputs.py)."""
        return self.mask_width is not None

    def input_names(self, stochastic: bool = False) -> list[str]:
        """The graph's inputs in order: observations, ``action_mask`` (masked), ``noise`` (stochastic),
        ``state_in`` (recurrent)."""
        return (list(self.observation_names) + ([ACTION_MASK] if self.masked else []) + ([NOISE] if stochastic else [])
                + ([STATE_IN] if self.recurrent else []))

    def input_shapes(self, stochastic: bool = False) -> dict[str, tuple[int, ...]]:
        """Each input's shape without the batch axis, in ``input_names`` order."""
        shapes = dict(self.observation_shapes)
        if self.masked:
            shapes[ACTION_MASK] = (self.mask_width,)
        if stochastic:
            shapes[NOISE] = (self.noise.width,)
        if self.recurrent:
            shapes[STATE_IN] = (self.state_size,)
        return {n: tuple(shapes[n]) for n in self.input_names(stochastic)}

    def feeds(self, obs: np.ndarray, state: Optional[np.ndarray] = None,
              noise: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        """Packed observations ``[N, *obs_shape]`` (a Dict space's ``[N, width]``, as rollouts store
        them) -> the graph's inputs by name, float32 and contiguous: ``{"obs": [N, *obs_shape]}`` or
        ``{key: [N, d] or [N]}``, plus ``noise [N, width]`` and ``state_in [N, S]`` when given, and
        ``action_mask [N, W]`` (0/1) for a masked policy: ``mask``, or all ones (every action valid)
        when None."""
        obs = np.asarray(obs, np.float32)
        split = {OBS: obs} if self.layout is None else self.layout.split(obs)
        out = {k: np.ascontiguousarray(v) for k, v in split.items()}
        if self.masked:
            out[ACTION_MASK] = (np.ones((len(obs), self.mask_width), np.float32) if mask is None
                                else np.ascontiguousarray(mask, np.float32))
        if noise is not None:
            out[NOISE] = np.ascontiguousarray(noise, np.float32)
        if state is not None:
            out[STATE_IN] = np.ascontiguousarray(state, np.float32)
        return out

    def require_plan(self) -> PolicyPlan:
        """The plan, or ``ExportError`` saying why the policy has none (what C cannot express)."""
        if self.plan is None:
            raise ExportError(self.plan_error or "the policy has no plan")
        return self.plan


def require_agent(agent) -> None:
    """Raise ``ExportError`` unless ``agent`` looks like a keras_trpo agent."""
    if not all(hasattr(agent, a) for a in AGENT_ATTRIBUTES):
        raise ExportError(f"expected a keras_trpo agent (keras_trpo.TRPO or keras_trpo.load(...)), "
                          f"got {type(agent).__name__}")


def read_plan(agent) -> tuple[Optional[PolicyPlan], Optional[str]]:
    """The policy as arrays (what the C export renders), or None and why C cannot express it."""
    try:
        return c_policy(agent), None
    except ExportError as e:
        return None, str(e)


def describe(agent, action_mask: Optional[bool] = None) -> PolicyDescription:
    """Read everything an export needs from ``agent`` (a description is returned as it is, its mask
    input set by ``action_mask``).

    ``action_mask``: whether the files take the ``action_mask`` input; None (default): if the agent
    was trained with masks (``agent.masked``). False leaves it out (every action valid, the unmasked
    file); True adds it to an agent trained without masks too (the rule masks its logits).
    ``ExportError`` if ``agent`` is not a keras_trpo agent, a Dict key cannot name a graph input, or
    a mask is asked for actions that cannot be masked (Box).
    """
    if isinstance(agent, PolicyDescription):
        return with_mask_input(agent, action_mask)
    require_agent(agent)
    space = agent.observation_space
    layout = layout_of(space)
    if layout is None:
        names = (OBS,)
        shapes = {OBS: obs_shape(space)}
        stats = {OBS: _stats(agent.obs_rms)}
    else:
        check_key_names(layout.keys)
        names = tuple(layout.keys)
        shapes = {e.key: tuple(e.shape) for e in layout.entries}
        stats = {e.key: _stats(agent.obs_rms[e.key]) for e in layout.entries if e.kind != "discrete"}
    recurrent = bool(getattr(agent, "is_recurrent", False))
    masked = bool(getattr(agent, "masked", False))  # trained with action masks (issue 29)
    plan, plan_error = read_plan(agent)
    return PolicyDescription(
        family=agent.family.name, param_names=tuple(agent.family.param_names), observation_space=space,
        action_space=agent.action_space, layout=layout, observation_names=names, observation_shapes=shapes,
        recurrent=str(agent.config.recurrent) if recurrent else "", state_size=int(agent.state_size) if recurrent else 0,
        noise=noise_spec(agent), observation_stats=stats, env_id=agent.env_id or None,
        env_kwargs=dict(agent.env_kwargs or {}),
        normalizes_observations=any(l.__class__.__name__ == "ObservationNormalizer" for l in agent.policy_model.layers),
        trained_timesteps=int(agent.num_timesteps),
        described_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        model=agent.policy_model, predict=agent.predict, sample=agent.family.rule.agent_action,
        plan=plan, plan_error=plan_error, rule=agent.family.rule, agent_masked=masked,
        mask_width=_mask_width(agent.family.rule, masked if action_mask is None else bool(action_mask)))


def _mask_width(rule: SamplingRule, masked: bool) -> Optional[int]:
    """The action_mask input's width, None without one; ``ExportError`` for actions that cannot be masked."""
    if not masked:
        return None
    if rule.mask_width is None:
        raise ExportError(f"{rule.distribution} actions cannot be masked: the action_mask input is for Discrete, "
                          "MultiDiscrete and MultiBinary action spaces")
    return int(rule.mask_width)


def with_mask_input(desc: PolicyDescription, action_mask: Optional[bool]) -> PolicyDescription:
    """``desc`` with the ``action_mask`` input added (True), left out (False), or as it is (None)."""
    if action_mask is None or bool(action_mask) == desc.masked:
        return desc
    if desc.rule is None:
        raise ExportError("this description has no sampling rule: describe the agent again to change its mask input")
    return dataclasses.replace(desc, mask_width=_mask_width(desc.rule, bool(action_mask)))


def _stats(rms) -> tuple[np.ndarray, np.ndarray]:
    """A running mean/std's (mean, var), as float64 copies."""
    return np.array(rms.mean, np.float64), np.array(rms.var, np.float64)


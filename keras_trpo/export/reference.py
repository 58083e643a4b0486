"""What every exporter checks first and compares against last: the agent itself.

``require_agent`` rejects anything that is not a keras_trpo agent with a clear error
(``refuse_quantize_stateful``: quantisation, which is for feed-forward ``obs`` graphs only);
``agent_reference`` runs the agent's own serving function (keras_trpo/export/graph.py, in TensorFlow), the
outputs each exported file must reproduce, and ``agent_episode_reference`` steps it through
episodes for a recurrent policy.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_trpo.export.errors import ExportError
from keras_trpo.export.graph import input_signature, serving_function
from keras_trpo.export.inputs import STATE_IN, STATE_OUT, input_names, is_recurrent, observation_feeds
from keras_trpo.export.noise import SAMPLED_ACTION, agent_sampled_action
from keras_trpo.export.verify import Episodes, run_feeds_in_batches

_AGENT_ATTRIBUTES = ("policy_model", "family", "observation_space", "action_space")


def require_agent(agent) -> None:
    """Raise ``ExportError`` unless ``agent`` looks like a keras_trpo agent."""
    if not all(hasattr(agent, a) for a in _AGENT_ATTRIBUTES):
        raise ExportError(f"expected a keras_trpo agent (keras_trpo.TRPO or keras_trpo.load(...)), got {type(agent).__name__}")


def refuse_quantize_stateful(agent, quantize) -> None:
    """Quantised copies are calibrated and compared on one ``obs`` input without a state."""
    if quantize and (is_recurrent(agent) or getattr(agent, "obs_keys", None) is not None):
        raise ExportError(f"quantize={quantize!r} is for feed-forward policies with one 'obs' input; this agent is "
                          f"{'recurrent' if is_recurrent(agent) else 'Dict-observation'}: export it without quantize")


def _serving(agent) -> tuple:
    fn = tf.function(serving_function(agent), input_signature=input_signature(agent))
    names = input_names(agent)
    return fn, lambda feeds: {k: v.numpy() for k, v in fn(*[tf.constant(feeds[n]) for n in names]).items()}


def agent_reference(agent, obs: np.ndarray, noise: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """The agent's outputs for feed-forward ``obs [N, *obs_shape]`` (a Dict space's packed ``[N, width]``):
    ``action [N, *action_shape]`` and the distribution parameters (``logits [N, k]`` or ``mean``,
    ``log_std [N, d]``); with ``noise`` ``[N, width]`` also ``sampled_action``, the agent's own
    NumPy sampler fed that noise."""
    _, run = _serving(agent)
    out = run_feeds_in_batches(run, observation_feeds(agent, obs))
    if noise is not None:
        out[SAMPLED_ACTION] = agent_sampled_action(agent, {n: out[n] for n in agent.family.param_names}, noise)
    return out


def agent_episode_reference(agent, episodes: Episodes, noise: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """A recurrent agent stepped through ``episodes`` (T steps of L lanes) by its serving function
    (the policy model with T = 1), carrying its own state and zeroing it at episode starts.

    Returns ``[T, L, ...]`` arrays: ``action``, the distribution parameters, ``state_out`` and
    ``state_in`` (the state each step started from; not a file output), and with ``noise``
    ``[T, L, width]`` ``sampled_action`` (the agent's own sampler fed that noise).
    """
    if not is_recurrent(agent):
        raise ExportError("agent_episode_reference is for recurrent agents; use agent_reference")
    _, run = _serving(agent)
    state = np.zeros((episodes.lanes, int(agent.state_size)), np.float32)
    steps, step_feeds = [], []
    for t in range(episodes.steps):
        state = np.where(episodes.starts[t][:, None], np.float32(0), state).astype(np.float32)
        feeds = dict(observation_feeds(agent, episodes.observations[t]), **{STATE_IN: state})
        out = run(feeds)
        out[STATE_IN] = state
        if noise is not None:
            out[SAMPLED_ACTION] = agent_sampled_action(agent, {n: out[n] for n in agent.family.param_names}, noise[t])
        steps.append(out)
        step_feeds.append(feeds)
        state = out[STATE_OUT]
    _check_against_model(agent, episodes, step_feeds, steps)
    return {k: np.stack([s[k] for s in steps]) for k in steps[0]}


# How far the one-step graph may be from the sequence model it is cut from: both are float32 with the
# same weights, differing only in how TensorFlow fuses them (measured ~1e-7).
ONE_STEP_TOLERANCE = 1e-5


def _check_against_model(agent, episodes: Episodes, feeds: list[dict[str, np.ndarray]], steps: list[dict]) -> None:
    """The serving function's steps (keras_trpo/export/graph.py ``one_step``, which walks the model's layers
    itself) against the policy model called as Keras calls it, once, on the whole episodes as
    sequences with their starts: the reference every exported file is compared with must be the
    agent, not just the graph that was converted. ``ExportError`` names the output and step."""
    lanes = episodes.lanes
    seq = {k: np.stack([f[k] for f in feeds], axis=1) for k in feeds[0] if k != STATE_IN}  # [L, T, ...]
    obs = seq["obs"] if getattr(agent, "obs_keys", None) is None else seq
    got = agent.policy_model({"obs": obs, "starts": episodes.starts.T.astype(np.float32),
                              "state": np.zeros((lanes, int(agent.state_size)), np.float32)}, training=False)
    for name in agent.family.param_names:
        want = np.swapaxes(np.asarray(got[name]), 0, 1)  # [T, L, size]
        have = np.stack([s[name] for s in steps])
        diff = np.max(np.abs(have.astype(np.float64) - want), axis=tuple(range(1, want.ndim))) if want.size else [0.0]
        bad = np.flatnonzero(~(np.asarray(diff) <= ONE_STEP_TOLERANCE))
        if bad.size:
            raise ExportError(f"the one-step serving graph differs from the policy model by {diff[bad[0]]:.3g} in "
                              f"{name!r} at step {bad[0]}: keras_trpo/export/graph.py's layer walk no longer matches this "
                              "Keras version's model")

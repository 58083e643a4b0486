"""What every exporter checks first and compares against last: the agent itself.

``require_agent`` rejects anything that is not a keras_trpo agent with a clear error;
``agent_reference`` runs the agent's own serving function (export/graph.py, in TensorFlow), the
outputs each exported file must reproduce.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from export.errors import ExportError
from export.graph import input_signature, serving_function
from export.noise import SAMPLED_ACTION, agent_sampled_action
from export.verify import run_in_batches

_AGENT_ATTRIBUTES = ("policy_model", "family", "observation_space", "action_space")


def require_agent(agent) -> None:
    """Raise ``ExportError`` unless ``agent`` looks like a keras_trpo agent."""
    if not all(hasattr(agent, a) for a in _AGENT_ATTRIBUTES):
        raise ExportError(f"expected a keras_trpo agent (keras_trpo.TRPO or keras_trpo.load(...)), got {type(agent).__name__}")
    # The exported graphs, the C and serving take one flat observation; one input per key is issue 19's next step.
    if getattr(agent, "is_recurrent", False):
        raise ExportError("this agent is recurrent (its policy acts with a state): exporting recurrent policies is not "
                          "supported yet; serve it from Python with agent.predict(obs, state, episode_start)")
    keys = getattr(agent, "obs_keys", None)
    if keys is not None:
        raise ExportError(f"this agent observes a Dict (keys {', '.join(keys)}): exporting Dict-observation policies "
                          "is not supported yet; train on gymnasium.wrappers.FlattenObservation(env) to export")


def agent_reference(agent, obs: np.ndarray, noise: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """The agent's outputs for ``obs [N, *obs_shape]``: ``action [N, *action_shape]`` and the
    distribution parameters (``logits [N, k]`` or ``mean``, ``log_std [N, d]``); with ``noise``
    ``[N, width]`` also ``sampled_action``, the agent's own NumPy sampler fed that noise."""
    fn = tf.function(serving_function(agent), input_signature=input_signature(agent))
    out = run_in_batches(lambda o: {k: v.numpy() for k, v in fn(tf.constant(o)).items()}, obs)
    if noise is not None:
        out[SAMPLED_ACTION] = agent_sampled_action(agent, {n: out[n] for n in agent.family.param_names}, noise)
    return out

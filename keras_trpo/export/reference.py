"""The agent's own outputs, the reference every exported file is compared with: computed here only.

``agent_reference`` runs the serving function (keras_trpo/export/graph.py, in TensorFlow) on the
observations a file is verified on, or steps it through ``Episodes`` for a recurrent policy,
carrying its own state; with noise it adds ``sampled_action``, the agent's own sampler fed that
noise. The recurrent steps are checked against the policy model run on the whole sequences, so
that the reference is the agent and not only the graph the files were converted from. A masked
policy's reference is run under each row's mask, and the graph's masked logits and actions are
checked against keras_trpo_serving/sampling.py's rule applied in NumPy to its unmasked logits
(``check_mask_rule``), so that the reference is the rule and not only the graph.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_trpo.export.compare import Tolerance, compare_outputs
from keras_trpo.export.description import PolicyDescription
from keras_trpo.export.errors import ExportError
from keras_trpo.export.graph import input_signature, serving_function
from keras_trpo.export.inputs import ACTION, STATE_IN, STATE_OUT, Runner, run_in_batches
from keras_trpo.export.noise import SAMPLED_ACTION
from keras_trpo.export.observations import Episodes, Inputs, MaskedObservations

# The one-step graph against the sequence model it is cut from: both float32 with the same weights,
# differing only in how TensorFlow fuses and orders the arithmetic (compare.py's rule).
ONE_STEP_TOLERANCE = Tolerance()


def serving_runner(desc: PolicyDescription) -> Runner:
    """The agent's deterministic serving function as a runner: inputs by name -> outputs by name."""
    fn = tf.function(serving_function(desc), input_signature=input_signature(desc))
    names = desc.input_names()
    return lambda feeds: {k: v.numpy() for k, v in fn(*[tf.constant(feeds[n]) for n in names]).items()}


def agent_reference(desc: PolicyDescription, inputs: Inputs, noise: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """The agent's outputs for what a file is verified on.

    Observations ``[N, *obs_shape]`` (a Dict's packed ``[N, width]``): ``action [N, *action_shape]``
    and the distribution parameters (``logits [N, k]`` or ``mean``, ``log_std [N, d]``).
    ``Episodes`` (a recurrent policy, T steps of L lanes): the same per step, ``[T, L, ...]``, plus
    ``state_out`` and ``state_in`` (the state each step started from; not a file output).
    With ``noise`` (``[N, width]``, or ``[T, L, width]``) also ``sampled_action``. A masked policy:
    under the masks of ``MaskedObservations`` or ``Episodes.masks`` (all valid where there are none).
    """
    if isinstance(inputs, Episodes):
        out = _episode_reference(desc, inputs)
    else:
        obs, masks = (inputs.observations, inputs.masks) if isinstance(inputs, MaskedObservations) else (inputs, None)
        run = serving_runner(desc)
        out = run_in_batches(run, desc.feeds(obs, mask=masks))
        if masks is not None:
            check_mask_rule(desc, run_in_batches(run, desc.feeds(obs)), out, masks, "observation")
    return out if noise is None else with_sampled_action(desc, out, noise, masks_of(inputs))


def masks_of(inputs: Inputs) -> Optional[np.ndarray]:
    """The masks of verification inputs (``[N, W]`` or ``[T, L, W]`` bool), None if they have none."""
    return inputs.masks if isinstance(inputs, (Episodes, MaskedObservations)) else None


def with_sampled_action(desc: PolicyDescription, reference: dict[str, np.ndarray], noise: np.ndarray,
                        masks: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """``reference`` plus ``sampled_action``: the agent's sampler fed ``noise`` for its parameters
    (``[N, width]``, or ``[T, L, width]`` sampled step by step), under ``masks`` (alike) if given."""
    params = {n: reference[n] for n in desc.param_names}
    if isinstance(noise, np.ndarray) and noise.ndim == 3:
        sampled = np.stack([desc.sample({n: p[t] for n, p in params.items()}, noise[t],
                                        *([] if masks is None else [masks[t]])) for t in range(len(noise))])
    else:
        sampled = desc.sample(params, noise, *([] if masks is None else [masks]))
    return dict(reference, **{SAMPLED_ACTION: sampled})


def check_mask_rule(desc: PolicyDescription, unmasked: dict[str, np.ndarray], masked: dict[str, np.ndarray],
                    masks: np.ndarray, row: str) -> None:
    """The serving graph under ``masks`` (bool ``[N, W]``) against keras_trpo_serving/sampling.py's rule in
    NumPy on the graph's logits under an all-ones mask: the masked logits exactly
    (``masked_logits``), the action exactly (``to_env(mode(...))``). ``ExportError`` naming the first
    ``row`` that differs."""
    rule, logits = desc.rule, unmasked["logits"]
    expected = {"logits": rule.masked_logits(logits, masks),
                ACTION: rule.to_env(rule.mode({"logits": logits}, masks)).reshape(masked[ACTION].shape)}
    for name, want in expected.items():
        got = masked[name]
        bad = np.flatnonzero(np.any((got != want).reshape(len(got), -1), axis=1))
        if bad.size:
            i = int(bad[0])
            raise ExportError(f"the serving graph's masked {name} (keras_trpo/export/graph.py) differ from the "
                              f"sampling rule's (keras_trpo_serving/sampling.py) at {row} {i}: {got[i].tolist()}, the "
                              f"rule's {want[i].tolist()} under mask {masks[i].astype(int).tolist()}")


def _episode_reference(desc: PolicyDescription, episodes: Episodes) -> dict[str, np.ndarray]:
    """The serving function (the policy model with T = 1) stepped through ``episodes``, carrying its
    own state and zeroing it at episode starts: ``[T, L, ...]`` arrays."""
    if not desc.is_recurrent:
        raise ExportError("a feed-forward policy is verified on observations [N, *obs_shape], not on Episodes")
    run = serving_runner(desc)
    state = np.zeros((episodes.lanes, desc.state_size), np.float32)
    steps, step_feeds, raw = [], [], []
    for t in range(episodes.steps):
        state = np.where(episodes.starts[t][:, None], np.float32(0), state).astype(np.float32)
        feeds = desc.feeds(episodes.observations[t], state)
        out = run(feeds)
        if episodes.masks is not None:  # the state does not depend on the mask: the unmasked step is the rule's input
            unmasked = out
            out = run(desc.feeds(episodes.observations[t], state, mask=episodes.masks[t]))
            check_mask_rule(desc, unmasked, out, episodes.masks[t], f"step {t}, lane")
            raw.append(unmasked)
        out[STATE_IN] = state
        steps.append(out)
        step_feeds.append(feeds)
        state = out[STATE_OUT]
    reference = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
    model_outputs = {k: np.stack([s[k] for s in raw]) for k in desc.param_names} if raw else reference
    check_one_step_graph(desc, episodes, step_feeds, model_outputs)  # the model's parameters are the unmasked ones
    return reference


def check_one_step_graph(desc: PolicyDescription, episodes: Episodes, feeds: list[dict[str, np.ndarray]],
                         reference: dict[str, np.ndarray]) -> None:
    """The serving function's steps (keras_trpo/export/graph.py ``one_step``, which walks the model's
    layers itself) against the policy model called as Keras calls it, once, on the whole episodes
    as sequences with their starts. ``ExportError`` names the output, episode, step and lane that
    differ, by how much and against what tolerance."""
    lanes = episodes.lanes
    seq = {k: np.stack([f[k] for f in feeds], axis=1) for k in desc.observation_names}  # [L, T, ...]
    obs = seq[desc.observation_names[0]] if desc.layout is None else seq
    got = desc.model({"obs": obs, "starts": episodes.starts.T.astype(np.float32),
                      "state": np.zeros((lanes, desc.state_size), np.float32)}, training=False)
    model = {n: np.swapaxes(np.asarray(got[n]), 0, 1) for n in desc.param_names}  # [T, L, size]
    flat = {n: reference[n].reshape((-1,) + reference[n].shape[2:]) for n in desc.param_names}  # [T L, size]
    compare_outputs({n: v.reshape(flat[n].shape) for n, v in model.items()}, flat,
                    "the one-step serving graph (keras_trpo/export/graph.py, which every file is converted from) "
                    "stepped through the verification episodes, against the policy model run on them as sequences",
                    discrete_actions=desc.discrete_actions, tolerance=ONE_STEP_TOLERANCE, error=ExportError,
                    row_label=lambda i: f"{episodes.label(*divmod(i, lanes))} (lane {i % lanes})")

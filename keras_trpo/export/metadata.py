"""Metadata that travels with an exported policy (ONNX metadata_props, SavedModel JSON)."""
from __future__ import annotations

import datetime
import json

import keras_trpo
from keras_trpo.export.inputs import STATE_OUT, STATE_RESET, input_names, is_recurrent, recurrent_cell, state_size
from keras_trpo.export.noise import SAMPLED_ACTION, noise_spec
from keras_trpo.spaces import space_to_json


def policy_metadata(agent, opset: int | None = None, stochastic: bool = False) -> dict[str, str]:
    """String key -> string value, as ONNX ``metadata_props`` needs. A ``stochastic`` file also
    has ``noise`` (its input's distribution and shape, JSON) and ``sampled_action`` in ``outputs``.

    ``inputs``: the graph's input names in order (keras_trpo/export/inputs.py); ``recurrent``: ``"lstm"``,
    ``"gru"`` or ``""``; ``state_size``: S of ``state_in`` / ``state_out`` (``"0"`` for a
    feed-forward policy); ``state_reset``: what the state is at an episode start (``""`` without one).
    A recurrent file lists ``state_out`` last in ``outputs``."""
    normalizes = any(l.__class__.__name__ == "ObservationNormalizer" for l in agent.policy_model.layers)
    meta = {
        "keras_trpo_version": keras_trpo.__version__,
        "env_id": agent.env_id or "",
        "observation_space": json.dumps(space_to_json(agent.observation_space)),
        "action_space": json.dumps(space_to_json(agent.action_space)),
        "distribution": agent.family.name,
        "obs_normalization": "true" if normalizes else "false",
        "trained_timesteps": str(int(agent.num_timesteps)),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "outputs": ",".join(("action",) + agent.family.param_names),
        "inputs": ",".join(input_names(agent, stochastic)),
        "recurrent": recurrent_cell(agent),
        "state_size": str(state_size(agent)),
        "state_reset": STATE_RESET if is_recurrent(agent) else "",
    }
    if stochastic:
        meta["noise"] = noise_spec(agent).as_metadata()
        meta["outputs"] += "," + SAMPLED_ACTION
    if is_recurrent(agent):
        meta["outputs"] += "," + STATE_OUT
    if opset is not None:
        meta["opset"] = str(opset)
    return meta

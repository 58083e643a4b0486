"""Metadata that travels with an exported policy (ONNX metadata_props, SavedModel JSON, .tflite, C)."""
from __future__ import annotations

import json

import keras_trpo
from keras_trpo.export.description import PolicyDescription
from keras_trpo.export.inputs import ACTION, STATE_OUT, STATE_RESET
from keras_trpo.export.noise import SAMPLED_ACTION
from keras_trpo.spaces import space_to_json
from keras_trpo_serving.sampling import mask_metadata


def policy_metadata(desc: PolicyDescription, opset: int | None = None, stochastic: bool = False) -> dict[str, str]:
    """String key -> string value, as ONNX ``metadata_props`` needs. A ``stochastic`` file also
    has ``noise`` (its input's distribution and shape, JSON) and ``sampled_action`` in ``outputs``.

    ``inputs``: the graph's input names in order (keras_trpo/export/inputs.py); ``recurrent``: ``"lstm"``,
    ``"gru"`` or ``""``; ``state_size``: S of ``state_in`` / ``state_out`` (``"0"`` for a
    feed-forward policy); ``state_reset``: what the state is at an episode start (``""`` without one).
    A recurrent file lists ``state_out`` last in ``outputs``. A masked file (``action_mask`` input) has
    ``action_mask``: keras_trpo_serving.sampling.mask_metadata's JSON (its width, dtype, values, layout)."""
    outputs = (ACTION,) + desc.param_names + ((SAMPLED_ACTION,) if stochastic else ()) + \
        ((STATE_OUT,) if desc.is_recurrent else ())
    meta = {
        "keras_trpo_version": keras_trpo.__version__,
        "env_id": desc.env_id or "",
        "observation_space": json.dumps(space_to_json(desc.observation_space)),
        "action_space": json.dumps(space_to_json(desc.action_space)),
        "distribution": desc.family,
        "obs_normalization": "true" if desc.normalizes_observations else "false",
        "trained_timesteps": str(desc.trained_timesteps),
        "exported_at": desc.described_at,
        "outputs": ",".join(outputs),
        "inputs": ",".join(desc.input_names(stochastic)),
        "recurrent": desc.recurrent,
        "state_size": str(desc.state_size),
        "state_reset": STATE_RESET if desc.is_recurrent else "",
    }
    if desc.masked:
        meta["action_mask"] = mask_metadata(desc.rule)
    if stochastic:
        meta["noise"] = desc.noise.as_metadata()
    if opset is not None:
        meta["opset"] = str(opset)
    return meta

"""Dict observations on the Keras side: one named input per key, the packed adapter, statistics.

The policy and value models of a Dict agent take ``{key: [B, d] (Box) or [B] (Discrete index)}``
with one ``keras.Input`` named after each key (so an export can have one named input per key).
Each Box entry has its own ``ObservationNormalizer`` (``{prefix}_obs_normalizer_{key}``), each
Discrete entry its own ``OneHot``; the results are concatenated in sorted-key order
(``{prefix}_obs_concat``) and go into the usual torso and heads. Rollouts and the learner carry
observations packed (``dict_obs``); ``PackedDictModel`` unpacks them in front of a model.

A recurrent Dict model (``networks.build_recurrent_policy_model``) has the same layers on sequences:
its ``"obs"`` input is ``{key: [B, T, d] or [B, T]}`` and the concatenation ``[B, T, F]`` goes into the cell.
"""
from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np

from keras_trpo.dict_obs import DictLayout, DictObsStats
from keras_trpo.layers import ObservationNormalizer, OneHot


def normalizer_name(prefix: str, key: str) -> str:
    return f"{prefix}_obs_normalizer_{key}"


def dict_model_inputs(layout: DictLayout, normalize: bool, prefix: str,
                      sequence: bool = False) -> tuple[dict[str, Any], Any]:
    """``({key: keras.Input}, features [B, F])``: per key normalised (Box) or one-hot (Discrete),
    concatenated in sorted-key order. With ``sequence`` the inputs are ``[B, T, d]`` / ``[B, T]``
    and the features ``[B, T, F]``; the layers and their names are the same."""
    time = (None,) if sequence else ()
    inputs = {e.key: keras.Input(shape=time + e.shape, dtype="float32", name=e.key) for e in layout.entries}
    parts = []
    for e in layout.entries:
        x = inputs[e.key]
        if e.kind == "discrete":
            x = OneHot(e.n, sequence=sequence, name=f"{prefix}_one_hot_{e.key}")(x)
        elif normalize:
            x = ObservationNormalizer(sequence=sequence, name=normalizer_name(prefix, e.key))(x)
        parts.append(x)
    features = keras.layers.Concatenate(name=f"{prefix}_obs_concat")(parts) if len(parts) > 1 else parts[0]
    return inputs, features


def push_dict_statistics(models: list[keras.Model], stats: DictObsStats) -> None:
    """Copy each key's running statistics into that key's normalisers in ``models``."""
    by_name = {normalizer_name(p, e.key): e.key for p in ("policy", "value") for e in stats.layout.box_entries}
    for model in models:
        for layer in model.layers:
            if isinstance(layer, ObservationNormalizer) and layer.name in by_name:
                s = stats[by_name[layer.name]]
                layer.set_statistics(s.mean.astype(np.float32), s.var.astype(np.float32))


class PackedDictModel(keras.Model):
    """``packed obs [B, width] -> model({key: ...})``: a Dict model as the rollout's arrays feed it.

    A recurrent model's input ``{"obs": packed [B, T, width], "starts", "state"}`` becomes
    ``{"obs": {key: [B, T, ...]}, "starts", "state"}``.

    Holds no weights of its own: ``trainable_variables`` are the wrapped model's, in its order, so
    the learner's flat parameter vector is the same. Used for learning and acting; never saved.
    """

    def __init__(self, model: keras.Model, layout: DictLayout, prefix: str):
        super().__init__(name=f"{model.name}_packed")
        self.inner, self.layout, self.prefix = model, layout, prefix
        self.built = True

    def call(self, packed, training: bool = False):
        if isinstance(packed, dict):  # recurrent: only the observations are packed
            return self.inner({**packed, "obs": self.layout.split(packed["obs"])}, training=training)
        return self.inner(self.layout.split(packed), training=training)


def packed_models(policy: keras.Model, value: keras.Model, layout: Optional[DictLayout]):
    """The models as the learner and actor call them: unchanged, or for a Dict space wrapped to take packed arrays."""
    if layout is None:
        return policy, value
    return PackedDictModel(policy, layout, "policy"), PackedDictModel(value, layout, "value")

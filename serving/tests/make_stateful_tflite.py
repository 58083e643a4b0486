"""stateful_recurrent.tflite and stateful_dict.tflite: the hand-built stateful_*.onnx policies
(make_fixtures.py --stateful) again as TensorFlow functions converted with tf.lite, with the same
weights (stateful_weights.json) and metadata, so LiteRtPolicy is tested on the recurrent and Dict
contract too. Needs TensorFlow and the repository's export package (the main venv):

    .venv/bin/python serving/tests/make_stateful_tflite.py
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np
import onnx
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from export.tflite import with_metadata  # noqa: E402


def weights(name: str) -> dict[str, tf.Tensor]:
    with open(os.path.join(OUT, "stateful_weights.json")) as f:
        raw = json.load(f)
    prefix = f"{name}."
    return {k[len(prefix):]: tf.constant(np.asarray(v["value"], v["dtype"])) for k, v in raw.items()
            if k.startswith(prefix)}


def onnx_metadata(name: str) -> dict[str, str]:
    m = onnx.load(os.path.join(OUT, f"{name}.onnx"))
    return {p.key: p.value for p in m.metadata_props}


def recurrent_fn():
    w = weights("stateful_recurrent")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="obs"),
                                  tf.TensorSpec([None, 4], tf.float32, name="state_in")])
    def serve(obs, state_in):
        state_out = tf.tanh(obs @ w["W"] + state_in @ w["U"] + w["b"])
        logits = state_out @ w["V"] + w["c"]
        return {"action": tf.argmax(logits, axis=1, output_type=tf.int64), "logits": logits, "state_out": state_out}
    return serve


def dict_fn():
    w = weights("stateful_dict")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="mode"),
                                  tf.TensorSpec([None, 2], tf.float32, name="pos")])
    def serve(mode, pos):
        hot = tf.one_hot(tf.cast(mode - 1.0, tf.int32), 3, dtype=tf.float32)
        mean = tf.concat([pos, hot], axis=1) @ w["W"] + w["b"]
        log_std = tf.broadcast_to(w["log_std"], tf.shape(mean))
        return {"action": tf.clip_by_value(mean, -1.0, 1.0), "mean": mean, "log_std": log_std}
    return serve


def convert(name: str, fn) -> None:
    module = tf.Module()
    module.serve = fn
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": fn.get_concrete_function()})
        model = tf.lite.TFLiteConverter.from_saved_model(tmp).convert()
    meta = {**onnx_metadata(name), "made_by": "serving/tests/make_stateful_tflite.py"}
    path = os.path.join(OUT, f"{name}.tflite")
    with open(path, "wb") as f:
        f.write(with_metadata(model, meta))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    convert("stateful_recurrent", recurrent_fn())
    convert("stateful_dict", dict_fn())

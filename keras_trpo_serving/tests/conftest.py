"""Fixtures for serving's tests. They run in a venv with numpy, onnxruntime, pytest and
gymnasium only: nothing here may import onnx, TensorFlow or keras_trpo.

Two kinds of committed ONNX files live in fixtures/:
  NAME.onnx + NAME.npz   written by the real exporter (tests/make_serving_fixtures.py) with
                         the TF agent's own outputs for some observations;
  linear_*.onnx          hand-built one-layer policies (keras_trpo_serving/tests/make_fixtures.py) whose
                         weights are in linear_weights.json, so tests can redo them in NumPy;
  broken_*.onnx          files that must be refused at load time;
  stateful_*             hand-built recurrent / Dict-observation policies (make_fixtures.py --stateful,
                         make_stateful_tflite.py), weights in stateful_weights.json;
  recurrent_*, dict_ff   recurrent / Dict files from the real exporter with the agent's episode sequence
                         (tests/make_serving_fixtures.py --recurrent, --pointgoal).
"""
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NAMES = ("discrete", "gaussian", "multidiscrete", "discrete_obs")  # from the real exporter


def fixture_path(name: str) -> str:
    return os.path.join(FIXTURES, f"{name}.onnx")


def reference(name: str) -> dict:
    """Observations and the TF agent's outputs for an exporter-made fixture."""
    with np.load(os.path.join(FIXTURES, f"{name}.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def linear_weights(name: str) -> dict[str, np.ndarray]:
    """The weights make_fixtures.py put into ``linear_<name>.onnx``."""
    with open(os.path.join(FIXTURES, "linear_weights.json")) as f:
        raw = json.load(f)
    prefix = f"linear_{name}."
    return {k[len(prefix):]: np.asarray(v["value"], v["dtype"]) for k, v in raw.items() if k.startswith(prefix)}


@pytest.fixture(params=NAMES)
def named_policy(request):
    from keras_trpo_serving import OnnxPolicy

    return request.param, OnnxPolicy(fixture_path(request.param), seed=0), reference(request.param)

"""A CartPole policy trained and exported by the training side (CI makes it; see .ci/run).

KERAS_TRPO_CARTPOLE_ONNX / KERAS_TRPO_CARTPOLE_REFERENCE point at the files written by
`python tests/make_serving_fixtures.py --cartpole DIR` in the training venv.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy

ONNX = os.environ.get("KERAS_TRPO_CARTPOLE_ONNX")
REFERENCE = os.environ.get("KERAS_TRPO_CARTPOLE_REFERENCE")
if os.environ.get("CI") and not (ONNX and os.path.exists(ONNX)):
    raise RuntimeError("CI must provide KERAS_TRPO_CARTPOLE_ONNX (see .ci/run)")  # never skip silently in CI
pytestmark = pytest.mark.skipif(
    not (ONNX and os.path.exists(ONNX)),
    reason="set KERAS_TRPO_CARTPOLE_ONNX (CI does: .ci/run trains and exports a CartPole policy first)")


def test_actions_equal_the_tf_agents_on_10000_observations():
    with np.load(REFERENCE, allow_pickle=False) as ref:
        obs, expected = ref["obs"], ref["action"]
    assert len(obs) == 10_000
    np.testing.assert_array_equal(OnnxPolicy(ONNX).act(obs), expected)


def test_cli_plays_cartpole_to_the_maximum():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", "--model", ONNX, "--env", "CartPole-v1",
                          "--episodes", "10"], capture_output=True, text=True, cwd=root, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 10 and result["mean_return"] >= 475

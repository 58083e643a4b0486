"""OnnxPolicy on ORT-format files written by export.to_ort (tests/make_serving_fixtures.py --ort),
against the TF agent's own outputs recorded at export time."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_trpo_serving import ModelLoadError, OnnxPolicy
from keras_trpo_serving.onnx_policy import is_ort_format
from keras_trpo_serving.tests.conftest import FIXTURES, ROOT, fixture_path, reference

ORT_NAMES = ("ort_gaussian", "ort_discrete")


def ort_path(name: str) -> str:
    return os.path.join(FIXTURES, f"{name}.ort")


@pytest.mark.parametrize("name", ORT_NAMES)
def test_ort_file_actions_and_parameters_match_agent(name):
    policy, ref = OnnxPolicy(ort_path(name), seed=0), reference(name)
    assert policy.format == "ort"
    actions = policy.act(ref["obs"])
    if name == "ort_gaussian":
        assert actions.dtype == np.float32
        np.testing.assert_allclose(actions, ref["action"], atol=1e-5)
    else:
        assert actions.dtype == np.int64
        np.testing.assert_array_equal(actions, ref["action"])
    for key, value in policy.distribution_params(ref["obs"]).items():
        np.testing.assert_allclose(value, np.broadcast_to(ref[key], value.shape), atol=1e-5, rtol=1e-5)
    one = policy.act(ref["obs"][0])
    np.testing.assert_allclose(one, ref["action"][0], atol=1e-5)


def test_ort_file_keeps_the_export_metadata():
    meta = OnnxPolicy(ort_path("ort_gaussian")).metadata
    assert meta["distribution"] == "diag_gaussian"
    assert meta["action_space"] == {"type": "Box", "shape": [2], "dtype": "float32", "low": [-1.0, -0.5],
                                    "high": [1.0, 2.0]}
    assert meta["observation_space"]["low"] == ["-inf"] * 3
    assert meta["keras_trpo_version"] and meta["obs_normalization"] == "true" and meta["opset"] == "17"
    assert OnnxPolicy(ort_path("ort_discrete")).metadata["action_space"]["start"] == 1


def test_format_is_read_from_the_content_not_the_name(tmp_path):
    assert is_ort_format(ort_path("ort_discrete")) and not is_ort_format(fixture_path("discrete"))
    for name in ("policy.onnx", "policy.bin", "policy"):
        renamed = tmp_path / name
        shutil.copy(ort_path("ort_discrete"), renamed)
        policy = OnnxPolicy(renamed)
        assert policy.format == "ort"
        np.testing.assert_array_equal(policy.act(reference("ort_discrete")["obs"]), reference("ort_discrete")["action"])
    assert OnnxPolicy(fixture_path("discrete")).format == "onnx"


def test_broken_ort_files_are_refused(tmp_path):
    data = open(ort_path("ort_gaussian"), "rb").read()
    truncated = tmp_path / "truncated.ort"
    truncated.write_bytes(data[:600])
    with pytest.raises(ModelLoadError, match=r"truncated.ort.*not a loadable ORT-format model") as info:
        OnnxPolicy(truncated)
    assert "\n" not in str(info.value)
    header_only = tmp_path / "header.ort"
    header_only.write_bytes(data[:8])
    with pytest.raises(ModelLoadError, match=r"header.ort.*not a loadable ORT-format model"):
        OnnxPolicy(header_only)


def test_control_loop_options_apply_to_ort_files():
    session = OnnxPolicy(ort_path("ort_gaussian")).session
    opts = session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


CARTPOLE_ONNX = os.environ.get("KERAS_TRPO_CARTPOLE_ONNX")
CARTPOLE_ORT = os.path.splitext(CARTPOLE_ONNX)[0] + ".ort" if CARTPOLE_ONNX else None
if os.environ.get("CI") and CARTPOLE_ONNX and not os.path.exists(CARTPOLE_ORT):
    raise RuntimeError(f"CI must provide {CARTPOLE_ORT} (tests/make_serving_fixtures.py --cartpole writes it)")
needs_cartpole = pytest.mark.skipif(
    not (CARTPOLE_ORT and os.path.exists(CARTPOLE_ORT)),
    reason="set KERAS_TRPO_CARTPOLE_ONNX; tests/make_serving_fixtures.py --cartpole writes cartpole.ort beside it")


@needs_cartpole
def test_cartpole_ort_acts_like_the_tf_agent_and_plays():
    with np.load(os.environ["KERAS_TRPO_CARTPOLE_REFERENCE"], allow_pickle=False) as ref:
        obs, expected = ref["obs"], ref["action"]
    np.testing.assert_array_equal(OnnxPolicy(CARTPOLE_ORT).act(obs), expected)
    out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", "--model", CARTPOLE_ORT, "--env", "CartPole-v1",
                          "--episodes", "3"], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["mean_return"] >= 475

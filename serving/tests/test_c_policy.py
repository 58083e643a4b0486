"""CPolicy: the C export built for the host and run through ctypes, in a closed loop against
OnnxPolicy (CI's CartPole policy, see .ci/run), and its errors.

KERAS_TRPO_CARTPOLE_C points at the cartpole_c/ directory `python tests/make_serving_fixtures.py
--cartpole DIR` writes beside cartpole.onnx (KERAS_TRPO_CARTPOLE_ONNX).
"""
import os
import shutil

import numpy as np
import pytest

from serving import ModelLoadError, OnnxPolicy, load_policy
from serving.c_policy import CPolicy

C_DIR = os.environ.get("KERAS_TRPO_CARTPOLE_C")
ONNX = os.environ.get("KERAS_TRPO_CARTPOLE_ONNX")
REFERENCE = os.environ.get("KERAS_TRPO_CARTPOLE_REFERENCE")
HAVE_CC = shutil.which(os.environ.get("CC", "cc").split()[0] if os.environ.get("CC") else "cc") is not None
if os.environ.get("CI") and not (C_DIR and os.path.isdir(C_DIR)):
    raise RuntimeError("CI must provide KERAS_TRPO_CARTPOLE_C (see .ci/run)")  # never skip silently in CI
real = pytest.mark.skipif(not (C_DIR and os.path.isdir(C_DIR) and ONNX and HAVE_CC),
                          reason="set KERAS_TRPO_CARTPOLE_C and KERAS_TRPO_CARTPOLE_ONNX (CI does) and have cc")


@real
def test_actions_equal_the_tf_agents_on_10000_observations():
    policy = load_policy(C_DIR)
    assert isinstance(policy, CPolicy) and policy.format == "c"
    with np.load(REFERENCE, allow_pickle=False) as ref:
        obs, expected, logits = ref["obs"], ref["action"], ref["logits"]
    got = policy.act(obs)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(policy.distribution_params(obs)["logits"], logits, atol=1e-5, rtol=1e-5)


@real
def test_closed_loop_returns_equal_onnxpolicys():
    pytest.importorskip("gymnasium")
    from serving.edge.closed_loop import lockstep
    from serving.cli import run_episodes

    onnx, c = OnnxPolicy(ONNX), CPolicy(C_DIR)
    a = run_episodes(onnx, "CartPole-v1", 10, 10000, True)["returns"]
    b = run_episodes(c, "CartPole-v1", 10, 10000, True)["returns"]
    assert a == b and min(a) > 0
    steps = lockstep(onnx, c, "CartPole-v1", 2, 10000)
    assert steps["steps"] > 0 and steps["steps_with_any_difference"] == 0


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler (cc)")
def test_bad_directories_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a C export directory"):
        CPolicy(tmp_path)
    (tmp_path / "policy.h").write_text("#error not a policy\n")
    (tmp_path / "policy.c").write_text('#include "policy.h"\n')
    (tmp_path / "policy_weights.h").write_text("")
    with pytest.raises(ModelLoadError, match="does not compile"):
        load_policy(tmp_path)


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler (cc)")
@pytest.mark.parametrize("extra, what", [
    ({"recurrent": "lstm", "state_size": "8"}, "recurrent (lstm) policy"),
    ({"observation_space": {"type": "Dict", "spaces": {"a": {"type": "Discrete", "n": 2}}}}, "Dict-observation policy"),
])
def test_recurrent_and_dict_files_are_refused_with_a_clear_error(tmp_path, extra, what):
    """CPolicy runs feed-forward Box/Discrete policies only: a C library whose metadata says
    otherwise is refused at load, naming the formats that run it."""
    import json

    meta = {"observation_space": {"type": "Box", "shape": [2], "low": [-1, -1], "high": [1, 1]},
            "action_space": {"type": "Discrete", "n": 2}, "distribution": "categorical"}
    meta.update(extra)
    props = json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    (tmp_path / "policy.h").write_text("void policy_act(const float *obs, void *action);\n")
    (tmp_path / "policy_weights.h").write_text("/* none */\n")
    (tmp_path / "policy.c").write_text(
        '#include "policy.h"\n#include "policy_weights.h"\n'
        "void policy_act(const float *obs, void *action) { (void)obs; (void)action; }\n"
        "void policy_params(const float *obs, float *params) { (void)obs; (void)params; }\n"
        f"const char *policy_metadata(void) {{ return {json.dumps(props)}; }}\n")
    import re

    with pytest.raises(ModelLoadError, match=re.escape(f"is a {what}, which CPolicy does not run; serve its .onnx")):
        CPolicy(str(tmp_path))

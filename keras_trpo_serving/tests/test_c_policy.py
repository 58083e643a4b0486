"""CPolicy: the C export built for the host and run through ctypes, in a closed loop against
OnnxPolicy (CI's CartPole policy, see .ci/run), recurrent and Dict C exports stepped against the
agent and the .onnx file, and its errors.

KERAS_TRPO_CARTPOLE_C points at the cartpole_c/ directory `python tests/make_serving_fixtures.py
--cartpole DIR` writes beside cartpole.onnx (KERAS_TRPO_CARTPOLE_ONNX).
"""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_trpo_serving import ModelLoadError, OnnxPolicy, load_policy
from keras_trpo_serving.c_policy import CPolicy

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
    from keras_trpo_serving.edge.closed_loop import lockstep
    from keras_trpo_serving.cli import run_episodes

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


# Written in a subprocess by tests/make_stateful_c_exports.py (the serving tests never import TensorFlow):
# recurrent Dict and Box agents as C directories, .onnx files and .npz episode references.


@pytest.fixture(scope="module")
def stateful_c(tmp_path_factory):
    import subprocess
    import sys

    # .ci/run writes them before this suite starts, with the same command (KERAS_TRPO_STATEFUL_C names the folder).
    ready = os.environ.get("KERAS_TRPO_STATEFUL_C")
    if ready:
        return Path(ready)
    out = tmp_path_factory.mktemp("stateful_c")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The serving venv has no TensorFlow: CI names the training venv's Python, which writes the exports.
    python = os.environ.get("KERAS_TRPO_TRAIN_PYTHON") or sys.executable
    try:
        done = subprocess.run([python, "-m", "tests.make_stateful_c_exports", str(out)], cwd=root, capture_output=True,
                              text=True, timeout=600, env=dict(os.environ, PYTHONPATH=root))
    except subprocess.TimeoutExpired:
        pytest.fail("writing the stateful C exports took over 10 minutes")
    if done.returncode != 0:
        if "No module named" in done.stderr and ("tensorflow" in done.stderr or "keras" in done.stderr):
            if os.environ.get("CI"):
                raise RuntimeError("CI must set KERAS_TRPO_TRAIN_PYTHON to a Python with keras_trpo (see .ci/run)")
            pytest.skip("writing C exports needs keras_trpo with TensorFlow (the export side): "
                        "set KERAS_TRPO_TRAIN_PYTHON to such a Python")
        raise RuntimeError(done.stderr[-3000:])
    return out


def _steps(ref, keys):
    obs = [{k: ref[k][t] for k in keys} if keys else ref["obs"][t] for t in range(len(ref["episode_start"]))]
    return obs, ref["episode_start"]


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler (cc)")
@pytest.mark.parametrize("kind", ["lstm_dict", "gru_box"])
def test_recurrent_and_dict_c_exports_step_like_the_agent(stateful_c, kind):
    """``step`` carrying the caller's state and ``act`` carrying the policy's own (zeros at each
    episode start) both give the agent's actions and states over the episodes, one row at a time."""
    policy = load_policy(str(stateful_c / f"{kind}_c"))
    assert isinstance(policy, CPolicy) and policy.is_recurrent
    assert policy.state_size == (8 if kind == "lstm_dict" else 4)  # LSTM [h, c] of 4 units, GRU h
    keys = ["mode", "pos"] if kind == "lstm_dict" else None
    assert (policy.obs_keys is not None) == bool(keys) and f"recurrent={kind.split('_')[0]}[" in repr(policy)
    with np.load(stateful_c / f"{kind}.npz") as ref:
        ref = dict(ref)
    obs, starts = _steps(ref, keys)
    state = policy.initial_state()
    assert state.shape == (1, policy.state_size) and not state.any()
    policy.reset()
    for t, (o, start) in enumerate(zip(obs, starts)):
        action, state = policy.step(o, state, episode_start=bool(start))
        np.testing.assert_allclose(state.reshape(-1), ref["state_out"][t], atol=1e-5)
        own = policy.act(o, episode_start=bool(start))
        if kind == "lstm_dict":
            np.testing.assert_allclose(action, ref["action"][t], atol=1e-5)
            np.testing.assert_allclose(own, ref["action"][t], atol=1e-5)
        else:
            assert action == ref["action"][t] == own
    params = policy.distribution_params(obs[1], ref["state_in"][1])  # from the state the agent had
    name = "mean" if kind == "lstm_dict" else "logits"
    np.testing.assert_allclose(params[name].reshape(-1), ref[name][1].reshape(-1), atol=1e-5)


@pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler (cc)")
def test_sampled_steps_equal_the_onnx_files(stateful_c):
    """``NAME_sample_noise`` with a state: the same sampled actions and states as the stochastic
    .onnx file of the same agent, fed the same noise, over a batch of 16 lanes."""
    for kind in ("lstm_dict", "gru_box"):
        c, onnx = CPolicy(str(stateful_c / f"{kind}_c")), OnnxPolicy(str(stateful_c / f"{kind}.onnx"))
        assert c.samples_in_graph and onnx.samples_in_graph
        with np.load(stateful_c / f"{kind}.npz") as ref:
            ref = dict(ref)
        keys = ["mode", "pos"] if kind == "lstm_dict" else None
        rng = np.random.default_rng(3)
        s_c = s_o = c.initial_state(16)
        for t in range(10):
            rows = rng.integers(0, len(ref["episode_start"]), 16)
            obs = {k: ref[k][rows] for k in keys} if keys else ref["obs"][rows]
            noise = (rng.random((16, c.noise_shape[0])) if c.noise_kind == "uniform"
                     else rng.standard_normal((16, c.noise_shape[0]))).astype(np.float32)
            a_c, s_c = c.step(obs, s_c, deterministic=False, noise=noise)
            a_o, s_o = onnx.step(obs, s_o, deterministic=False, noise=noise)
            np.testing.assert_allclose(s_c, s_o, atol=1e-5)
            if kind == "gru_box":
                np.testing.assert_array_equal(a_c, a_o)
            else:
                np.testing.assert_allclose(a_c, a_o, atol=1e-5)

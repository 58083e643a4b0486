"""OnnxPolicy on the real exporter's fixtures (against the TF agent's own outputs recorded at
export time), its input checks, and its refusal of files it cannot serve."""
import json
import sys

import numpy as np
import pytest

from keras_trpo_serving import InvalidObservation, ModelLoadError, NonFiniteObservation, OnnxPolicy
from keras_trpo_serving.tests.conftest import fixture_path, reference


def test_batch_actions_match_agent(named_policy):
    name, policy, ref = named_policy
    actions = policy.act(ref["obs"])
    assert actions.shape == ref["action"].shape
    if name == "gaussian":
        assert actions.dtype == np.float32
        np.testing.assert_allclose(actions, ref["action"], atol=1e-5)
    else:
        assert actions.dtype == np.int64
        np.testing.assert_array_equal(actions, ref["action"])


def test_single_observation_gives_single_action(named_policy):
    name, policy, ref = named_policy
    for obs, expected in zip(ref["obs"][:5], ref["action"][:5]):
        action = policy.act(obs)
        assert np.shape(action) == np.shape(expected)
        np.testing.assert_allclose(action, expected, atol=1e-5)


def test_distribution_params_match_agent(named_policy):
    name, policy, ref = named_policy
    params = policy.distribution_params(ref["obs"])
    for key, value in params.items():
        np.testing.assert_allclose(value, np.broadcast_to(ref[key], value.shape), atol=1e-5, rtol=1e-5)


def test_metadata_describes_spaces():
    policy = OnnxPolicy(fixture_path("gaussian"))
    meta = policy.metadata
    assert meta["distribution"] == "diag_gaussian"
    assert meta["action_space"] == {"type": "Box", "shape": [2], "dtype": "float32", "low": [-1.0, -0.5],
                                    "high": [1.0, 2.0]}
    assert meta["observation_space"]["low"] == ["-inf"] * 3  # the export's own encoding
    assert meta["keras_trpo_version"] and meta["obs_normalization"] == "true"
    assert meta["outputs"] == "action,mean,log_std"  # keys serving does not know are kept
    json.dumps(meta, allow_nan=False)  # strict JSON for the HTTP endpoint
    assert np.all(np.isneginf(policy.observation_space.low))  # parsed: real infinities
    assert OnnxPolicy(fixture_path("discrete")).metadata["action_space"]["start"] == 1


@pytest.mark.parametrize("bad, message", [
    (np.zeros(3, np.float32), r"shape \(3,\); expected \(4,\)"),
    (np.zeros((2, 5), np.float32), r"expected \(4,\) for one observation or \(batch, 4\)"),
    (np.zeros((2, 2, 4), np.float32), r"shape \(2, 2, 4\)"),
    (np.array(["a", "b", "c", "d"]), r"dtype <U1; expected numbers .*of shape \(4,\)"),
    (["1", "2", "3", "4"], r"dtype <U1"),
    ([1.0, None, 0, 0], r"dtype object"),
    ({"obs": [1, 2, 3, 4]}, r"dtype object"),
    ([[1, 2, 3, 4], [1, 2]], r"not a rectangular array.*\(4,\)"),
    (np.zeros(4, complex), r"dtype complex128"),
    (np.zeros((), np.float32), r"shape \(\); expected \(4,\)"),
])
def test_bad_observations_are_named(bad, message):
    policy = OnnxPolicy(fixture_path("discrete"))
    with pytest.raises(InvalidObservation, match=message) as info:
        policy.act(bad)
    assert isinstance(info.value, ValueError)  # callers may catch ValueError


@pytest.mark.parametrize("bad", [
    np.array([1.0, np.nan, 0, 0]), np.array([[1.0, 0, np.inf, 0]]), np.array([[0.0] * 4, [0, 0, 0, -np.inf]]),
    [0.0, 0.0, float("nan"), 0.0],
])
def test_nan_and_inf_are_refused(bad):
    with pytest.raises(NonFiniteObservation, match=r"NaN or inf.*shape \(4,\)"):
        OnnxPolicy(fixture_path("discrete")).act(bad)


def test_float64_beyond_float32_range_is_refused():
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteObservation, match="float32's range"):
        OnnxPolicy(fixture_path("discrete")).act(np.array([1e39, 0, 0, 0]))


def test_discrete_observation_out_of_range_is_refused():
    policy = OnnxPolicy(fixture_path("discrete_obs"))  # Discrete(6)
    for bad in (6, -1, 2.5, [0, 7]):
        with pytest.raises(InvalidObservation, match=r"integer in \[0, 5\]"):
            policy.act(bad)
    assert policy.act(5) in (0, 1)


def test_empty_batch_gives_empty_actions():
    policy = OnnxPolicy(fixture_path("multidiscrete"))
    for deterministic in (True, False):
        out = policy.act(np.zeros((0, 5), np.float32), deterministic=deterministic)
        assert out.shape == (0, 2) and out.dtype == np.int64


def test_safe_casts_are_accepted():
    policy = OnnxPolicy(fixture_path("discrete"))
    obs = reference("discrete")["obs"][:4]
    expected = policy.act(obs)
    np.testing.assert_array_equal(policy.act(obs.astype(np.float64)), expected)
    np.testing.assert_array_equal(policy.act(obs.tolist()), expected)
    assert policy.act(np.array([1, 0, -1, 2], np.int32)) in (1, 2, 3)


def test_stochastic_actions_follow_the_distribution():
    policy = OnnxPolicy(fixture_path("discrete"), seed=7)
    obs = reference("discrete")["obs"][:1]
    logits = policy.distribution_params(obs)["logits"][0].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    draws = policy.act(np.repeat(obs, 20_000, axis=0), deterministic=False)
    freq = np.bincount(draws - 1, minlength=3) / len(draws)  # Discrete(3, start=1)
    np.testing.assert_allclose(freq, probs, atol=0.015)
    again = OnnxPolicy(fixture_path("discrete"), seed=7).act(np.repeat(obs, 20_000, axis=0), deterministic=False)
    np.testing.assert_array_equal(draws, again)  # seeded: reproducible


def test_stochastic_gaussian_respects_bounds_and_spread():
    policy = OnnxPolicy(fixture_path("gaussian"), seed=1)
    obs = np.zeros((50_000, 3), np.float32)
    params = policy.distribution_params(obs[:1])
    draws = policy.act(obs, deterministic=False)
    low, high = np.array([-1, -0.5]), np.array([1, 2])
    assert np.all(draws >= low) and np.all(draws <= high)
    # Away from the bounds the sample mean is the distribution's mean.
    mean, std = params["mean"][0], np.exp(params["log_std"][0])
    inside = np.all((mean - 3 * std > low) & (mean + 3 * std < high))
    if inside:
        np.testing.assert_allclose(draws.mean(0), mean, atol=0.02)
    assert draws.std(0).min() > 0


def test_multidiscrete_sampling_stays_in_range():
    policy = OnnxPolicy(fixture_path("multidiscrete"), seed=0)
    draws = policy.act(np.zeros((5000, 5), np.float32), deterministic=False)
    assert draws.shape == (5000, 2) and draws.dtype == np.int64
    assert draws[:, 0].min() >= 0 and draws[:, 0].max() <= 2 and set(np.unique(draws[:, 1])) <= {0, 1}
    assert len(np.unique(draws[:, 0])) == 3  # all three sub-actions are reachable


def test_discrete_observation_space_takes_integers():
    policy = OnnxPolicy(fixture_path("discrete_obs"))
    ref = reference("discrete_obs")
    np.testing.assert_array_equal(policy.act(ref["obs"].astype(np.int64)), ref["action"])
    assert policy.obs_shape == ()


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(ModelLoadError, match="no model file at .*nope.onnx"):
        OnnxPolicy(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="is not a file"):
        OnnxPolicy(tmp_path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="junk.onnx.*not a loadable ONNX model") as info:
        OnnxPolicy(junk)
    assert "\n" not in str(info.value) and info.value.__cause__ is None  # one line, no onnxruntime trace
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(open(fixture_path("discrete"), "rb").read()[:500])
    with pytest.raises(ModelLoadError, match="truncated.onnx.*not a loadable ONNX model"):
        OnnxPolicy(truncated)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty.onnx"):
        OnnxPolicy(empty)


@pytest.mark.parametrize("name, message", [
    ("broken_no_metadata", r"broken_no_metadata.onnx.* has no observation_space, action_space, distribution "
                           r"metadata: it was not exported by keras-trpo's export"),
    ("broken_input_name", r"broken_input_name.onnx.* should have the inputs \['obs'\] .*has \['input_1'\]"),
    ("broken_missing_output", r"broken_missing_output.onnx.* lacks outputs \['log_std'\] for a diag_gaussian"),
    ("broken_shape_mismatch", r"broken_shape_mismatch.onnx.*shape \['batch', 4\] but the metadata's "
                              r"observation space needs \[batch, 6\]"),
])
def test_files_that_break_the_contract_are_refused(name, message):
    with pytest.raises(ModelLoadError, match=message):
        OnnxPolicy(fixture_path(name))


def test_session_options_can_be_overridden():
    import onnxruntime as ort

    default = OnnxPolicy(fixture_path("discrete")).session.get_session_options()
    assert default.intra_op_num_threads == 1 and default.inter_op_num_threads == 1
    assert default.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert default.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert default.get_session_config_entry("session.intra_op.allow_spinning") == "0"  # control loop: no busy-wait
    assert default.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    two = OnnxPolicy(fixture_path("discrete"), threads=2, allow_spinning=True).session.get_session_options()
    assert two.intra_op_num_threads == 2 and two.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    mine = ort.SessionOptions()
    mine.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    policy = OnnxPolicy(fixture_path("discrete"), sess_options=mine)
    assert policy.session.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    np.testing.assert_array_equal(policy.act(reference("discrete")["obs"]), reference("discrete")["action"])


def _graph_runs_at_load(tmp_path, **kwargs) -> int:
    """How many times onnxruntime ran the graph while OnnxPolicy loaded (from its own profile)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / f"profile_{len(list(tmp_path.iterdir()))}")
    policy = OnnxPolicy(fixture_path("gaussian"), sess_options=opts, **kwargs)
    with open(policy.session.end_profiling()) as f:
        events = json.load(f)
    return sum(1 for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")


def test_warmup_runs_acts_graph_calls_at_load(tmp_path):
    # One run is the load-time check; each warm-up call runs the deterministic and the sampling outputs.
    assert _graph_runs_at_load(tmp_path, warmup=0) == 1
    assert _graph_runs_at_load(tmp_path) == 1 + 2 * 3
    assert _graph_runs_at_load(tmp_path, warmup=5) == 1 + 2 * 5
    assert _graph_runs_at_load(tmp_path, warmup=False) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, r"threads must be an integer >= 1, got 0"),
    ({"threads": 1.5}, r"threads must be an integer >= 1"),
    ({"warmup": -1}, r"warmup must be an integer >= 0, got -1"),
    ({"warmup": "3"}, r"warmup must be an integer >= 0, got '3'"),
])
def test_bad_control_loop_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OnnxPolicy(fixture_path("discrete"), **kwargs)


def test_no_tensorflow_in_the_process():
    OnnxPolicy(fixture_path("gaussian")).act(np.zeros(3, np.float32))
    assert "tensorflow" not in sys.modules
    assert not any(m.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "keras_trpo") for m in sys.modules)

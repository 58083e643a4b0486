"""LiteRtPolicy: .tflite exports run by ai-edge-litert, with no TensorFlow in the process.

Fixtures (tests/make_serving_fixtures.py --tflite): litert_NAME.tflite + litert_NAME.npz from the
real exporter with the TF agent's own outputs, a static-int8 copy of the Gaussian one, and
broken_litert_*.tflite files that must be refused. CI also provides a trained CartPole policy
(KERAS_TRPO_CARTPOLE_TFLITE, see .ci/run).
"""
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from keras_trpo_serving import InvalidObservation, ModelLoadError, NonFiniteObservation, OnnxPolicy
from keras_trpo_serving.tests.conftest import FIXTURES, ROOT, fixture_path, reference

HAVE_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
if os.environ.get("CI") and not HAVE_LITERT:
    raise RuntimeError("CI must install ai-edge-litert (keras_trpo_serving/requirements-litert.txt, see .ci/run)")
pytestmark = pytest.mark.skipif(not HAVE_LITERT, reason="ai-edge-litert is not installed: "
                                "pip install -r keras_trpo_serving/requirements-litert.txt")

NAMES = ("discrete", "gaussian", "multidiscrete", "discrete_obs")
CARTPOLE = os.environ.get("KERAS_TRPO_CARTPOLE_TFLITE")
CARTPOLE_REFERENCE = os.environ.get("KERAS_TRPO_CARTPOLE_REFERENCE")


def litert_path(name: str) -> str:
    return os.path.join(FIXTURES, f"{name}.tflite")


@pytest.fixture(params=NAMES)
def named(request):
    from keras_trpo_serving.litert_policy import LiteRtPolicy

    name = f"litert_{request.param}"
    return request.param, LiteRtPolicy(litert_path(name), seed=0), reference(name)


def test_batch_actions_and_params_match_the_agent(named):
    kind, policy, ref = named
    actions = policy.act(ref["obs"])
    assert actions.shape == ref["action"].shape and actions.dtype == ref["action"].dtype
    if kind == "gaussian":
        np.testing.assert_allclose(actions, ref["action"], atol=1e-5)
    else:
        np.testing.assert_array_equal(actions, ref["action"])
    for key, value in policy.distribution_params(ref["obs"]).items():
        np.testing.assert_allclose(value, np.broadcast_to(ref[key], value.shape), atol=1e-5, rtol=1e-5)


def test_single_observations_and_changing_batch_sizes(named):
    kind, policy, ref = named
    for i in (0, 1, 2):  # batch 1 after batch 1: tensors stay allocated
        action = policy.act(ref["obs"][i])
        assert np.shape(action) == np.shape(ref["action"][i])
        np.testing.assert_allclose(action, ref["action"][i], atol=1e-5)
    if kind == "discrete":
        assert type(policy.act(ref["obs"][0])) is np.int64  # a scalar, as OnnxPolicy gives
    for rows in (7, 1, 30, 0, 2):  # each change re-allocates the interpreter's tensors
        got = policy.act(ref["obs"][:rows])
        assert got.shape == ref["action"][:rows].shape
        np.testing.assert_allclose(got, ref["action"][:rows], atol=1e-5)


def test_metadata_travels_in_the_flatbuffer(named):
    kind, policy, _ = named
    onnx = OnnxPolicy(fixture_path(kind))  # the same spaces, exported to ONNX
    meta = policy.metadata
    assert meta["format"] == "tflite" and "quantization" not in meta
    assert meta["observation_space"] == onnx.metadata["observation_space"]
    assert meta["action_space"] == onnx.metadata["action_space"]
    assert meta["distribution"] == onnx.metadata["distribution"] and meta["keras_trpo_version"]
    json.dumps(meta, allow_nan=False)  # strict JSON for /v1/metadata
    assert policy.obs_shape == onnx.obs_shape and policy.action_space.dtype == onnx.action_space.dtype
    assert "LiteRtPolicy(" in repr(policy) and "quantization=none" in repr(policy)


def test_sampled_discrete_actions_follow_the_softmax():
    from keras_trpo_serving.litert_policy import LiteRtPolicy

    ref = reference("litert_discrete")
    policy = LiteRtPolicy(litert_path("litert_discrete"), seed=5)
    obs = np.repeat(ref["obs"][:1], 20_000, axis=0)
    draws = policy.act(obs, deterministic=False)
    logits = ref["logits"][0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    freq = np.bincount(draws - 1, minlength=3) / len(draws)  # Discrete(3, start=1)
    # 5 standard errors of a proportion over 20,000 draws
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / len(draws)) + 1e-12)
    again = LiteRtPolicy(litert_path("litert_discrete"), seed=5).act(obs[:50], deterministic=False)
    np.testing.assert_array_equal(again, draws[:50])  # seeded


def test_sampled_gaussian_actions_have_the_exported_std():
    from keras_trpo_serving.litert_policy import LiteRtPolicy

    ref = reference("litert_gaussian")
    policy = LiteRtPolicy(litert_path("litert_gaussian"), seed=1)
    obs = np.repeat(ref["obs"][:1], 20_000, axis=0)
    draws = policy.act(obs, deterministic=False).astype(np.float64)
    assert np.all(draws >= policy.action_space.low) and np.all(draws <= policy.action_space.high)
    mean, std = ref["mean"][0].astype(np.float64), np.exp(ref["log_std"].reshape(-1, 2)[0].astype(np.float64))
    inside = (mean - 3 * std > policy.action_space.low) & (mean + 3 * std < policy.action_space.high)
    # Dimensions far from the bounds are unclipped normals: sample mean within 5 standard errors.
    assert np.all(np.abs(draws.mean(0) - mean)[inside] <= 5 * std[inside] / math.sqrt(len(draws)))


def test_static_int8_copy_runs_close_to_the_agent():
    from keras_trpo_serving.litert_policy import LiteRtPolicy

    ref = reference("litert_gaussian")
    q = LiteRtPolicy(litert_path("litert_gaussian.static-int8"))
    assert q.metadata["quantization"] == "static-int8" and int(q.metadata["calibration_observations"]) > 0
    actions = q.act(ref["obs"])
    assert actions.dtype == np.float32 and actions.shape == ref["action"].shape
    assert np.all(actions >= q.action_space.low) and np.all(actions <= q.action_space.high)
    width = q.action_space.high - q.action_space.low
    err = np.abs(actions - ref["action"]) / width
    # Not the float file's 1e-5, but a policy, not noise: typical error a few percent of the range.
    assert 0 < np.median(err) < 0.05 and err.max() < 0.5


def test_bad_observations_are_refused_with_the_expected_shape():
    from keras_trpo_serving.litert_policy import LiteRtPolicy

    policy = LiteRtPolicy(litert_path("litert_discrete"))
    with pytest.raises(InvalidObservation, match=r"shape \(3,\); expected \(4,\)"):
        policy.act(np.zeros(3))
    with pytest.raises(NonFiniteObservation, match="NaN or inf"):
        policy.act([0.0, float("nan"), 0.0, 0.0])
    with pytest.raises(InvalidObservation, match=r"dtype <U1"):
        policy.act(["a", "b", "c", "d"])
    discrete_obs = LiteRtPolicy(litert_path("litert_discrete_obs"))
    with pytest.raises(InvalidObservation, match=r"integer in \[0, 5\]"):
        discrete_obs.act(6)
    assert policy.act(np.zeros(4)) in (1, 2, 3)  # still serving


def _damaged(tmp_path, name, transform):
    data = open(litert_path("litert_gaussian"), "rb").read()
    path = tmp_path / name
    path.write_bytes(transform(data))
    return str(path)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: str(tmp / "missing.tflite"), "no model file"),
    (lambda tmp: str(tmp), "is not a file"),
    (lambda tmp: fixture_path("gaussian"), "not a TFLite flatbuffer"),  # an ONNX file
    (lambda tmp: _damaged(tmp, "empty.tflite", lambda d: b""), "not a TFLite flatbuffer"),
    (lambda tmp: _damaged(tmp, "cut.tflite", lambda d: d[: len(d) // 3]), "damaged|not a loadable"),
    (lambda tmp: _damaged(tmp, "scrambled.tflite", lambda d: d[:8] + bytes(255 - b for b in d[8:])),
     "damaged|not a loadable|no KERAS_TRPO_METADATA"),
    (lambda tmp: litert_path("broken_litert_no_metadata"), "no KERAS_TRPO_METADATA metadata"),
    (lambda tmp: litert_path("broken_litert_wrong_space"), r"output 'action' has shape|lacks outputs \['logits'\]"),
])
def test_files_it_cannot_serve_are_refused_by_name(tmp_path, make, message):
    from keras_trpo_serving.litert_policy import LiteRtPolicy

    path = make(tmp_path)
    with pytest.raises(ModelLoadError, match=message) as info:
        LiteRtPolicy(path)
    assert os.path.basename(path) in str(info.value)


def test_threads_share_one_policy():
    """The interpreter runs one call at a time; concurrent callers with different batch sizes
    (each a re-allocation) must each get their own rows' actions."""
    from keras_trpo_serving.litert_policy import LiteRtPolicy

    ref = reference("litert_multidiscrete")
    policy = LiteRtPolicy(litert_path("litert_multidiscrete"))
    jobs = [(i % len(ref["obs"]), 1 + i % 5) for i in range(400)]

    def call(job):
        start, rows = job
        return job, policy.act(ref["obs"][start: start + rows])

    barrier = threading.Barrier(8)

    def first(job):  # all eight threads begin together
        barrier.wait(10)
        return call(job)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(first, jobs[:8])) + list(pool.map(call, jobs[8:]))
    for (start, rows), got in results:
        np.testing.assert_array_equal(got, ref["action"][start: start + rows])


def test_load_policy_picks_the_class_by_content(tmp_path):
    from keras_trpo_serving.litert_policy import LiteRtPolicy
    from keras_trpo_serving.load import load_policy

    renamed = tmp_path / "policy.bin"
    shutil.copy(litert_path("litert_discrete"), renamed)
    assert isinstance(load_policy(renamed), LiteRtPolicy)
    assert isinstance(load_policy(fixture_path("discrete")), OnnxPolicy)
    with pytest.raises(ModelLoadError, match="onnxruntime only"):
        load_policy(litert_path("litert_discrete"), providers=["CPUExecutionProvider"])


def test_http_server_serves_a_tflite_policy():
    import http.client

    from keras_trpo_serving.litert_policy import LiteRtPolicy
    from keras_trpo_serving.server import make_server

    ref = reference("litert_gaussian")
    srv = make_server(LiteRtPolicy(litert_path("litert_gaussian")), "127.0.0.1", 0, keep_alive_timeout=10)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        def post(body):
            conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
            conn.request("POST", "/v1/act", body=json.dumps(body), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            out = resp.status, json.loads(resp.read())
            conn.close()
            return out

        status, body = post({"obs": ref["obs"][:5].tolist()})
        assert status == 200
        np.testing.assert_allclose(body["action"], ref["action"][:5], atol=1e-5)
        status, body = post({"obs": [1.0, 2.0]})
        assert status == 422 and "expected (3,)" in body["error"]
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        conn.request("GET", "/v1/metadata")
        meta = json.loads(conn.getresponse().read())
        conn.close()
        assert meta["format"] == "tflite" and meta["distribution"] == "diag_gaussian"
    finally:
        srv.shutdown()
        thread.join(30)  # before releasing the socket (see test_server.running)
        srv.server_close()


def test_cli_run_dispatches_on_tflite_and_checks_the_env():
    out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", "--model", litert_path("litert_gaussian"),
                          "--env", "CartPole-v1", "--episodes", "1"], capture_output=True, text=True, cwd=ROOT)
    # litert_gaussian takes Box(3) observations: the CLI read that from the flatbuffer's metadata
    # (so it loaded a LiteRtPolicy) and refused CartPole's Box(4) before the first step.
    assert out.returncode == 2 and "does not match the model's Box[3]" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(not (CARTPOLE and os.path.exists(CARTPOLE)),
                    reason="set KERAS_TRPO_CARTPOLE_TFLITE (CI does: .ci/run exports a CartPole policy first)")
class TestCartPole:
    def test_float_actions_equal_the_tf_agents_on_10000_observations(self):
        from keras_trpo_serving.litert_policy import LiteRtPolicy

        with np.load(CARTPOLE_REFERENCE, allow_pickle=False) as ref:
            obs, expected = ref["obs"], ref["action"]
        assert len(obs) == 10_000
        np.testing.assert_array_equal(LiteRtPolicy(CARTPOLE).act(obs), expected)

    def test_static_int8_mismatches_are_rare(self):
        from keras_trpo_serving.litert_policy import LiteRtPolicy

        with np.load(CARTPOLE_REFERENCE, allow_pickle=False) as ref:
            obs, expected = ref["obs"], ref["action"]
        q = LiteRtPolicy(CARTPOLE.replace(".tflite", ".static-int8.tflite"))
        mismatches = int(np.sum(q.act(obs) != expected))
        print(f"static-int8 CartPole: {mismatches} of {len(obs)} actions differ from the agent's")
        assert mismatches < 0.05 * len(obs)

    @pytest.mark.parametrize("suffix", [".tflite", ".static-int8.tflite"])
    def test_cli_plays_cartpole_to_the_maximum(self, suffix):
        model = CARTPOLE.replace(".tflite", suffix)
        out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", "--model", model, "--env", "CartPole-v1",
                              "--episodes", "10"], capture_output=True, text=True, cwd=ROOT, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["episodes"] == 10 and result["mean_return"] >= 475

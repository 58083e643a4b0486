"""export/: parity with the agent, metadata, SavedModel without keras_trpo, tamper detection."""
import json
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from keras_trpo import export
import keras_trpo
from keras_trpo.export import ExportError, ExportVerificationError
from keras_trpo.spaces import space_from_json


class _ToyEnv(gym.Env):
    """Box(5) observations; the action space is chosen by the test."""

    def __init__(self, action_space):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
        self.action_space = action_space
        self._t = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.normal(size=5).astype(np.float32), {}

    def step(self, action):
        self._t += 1
        return self.np_random.normal(size=5).astype(np.float32), 1.0, False, self._t >= 20, {}


_AGENTS: dict[tuple[str, bool], keras_trpo.TRPO] = {}


def _trained(action_space, normalize=True):
    """One small agent per (action space, normalize) in a test process: the tests that take it (here,
    test_export_ort.py, test_export_quantize.py) only export it and predict with it, and training the same
    agent again for each of them cost 2-5 s apiece (18 trainings, 4 different)."""
    key = (repr(action_space), normalize)
    if key not in _AGENTS:
        _AGENTS[key] = _train(action_space, normalize)
    return _AGENTS[key]


def _train(action_space, normalize):
    agent = keras_trpo.TRPO(lambda: _ToyEnv(action_space), seed=3, n_envs=1, n_steps=64, normalize_obs=normalize,
                            value_epochs=1, jit_compile=False)
    agent.fit(128, verbose=0)  # moves weights and normaliser statistics off their initial values
    return agent


SPACES = {
    "discrete": gym.spaces.Discrete(4, start=2),
    "box": gym.spaces.Box(np.array([-1, -2, 0], np.float32), np.array([1, 2, 0.5], np.float32)),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 2, 5]),
}


@pytest.fixture(scope="module", params=sorted(SPACES))
def agent_and_onnx(request, tmp_path_factory):
    agent = _trained(SPACES[request.param])
    path = tmp_path_factory.mktemp(request.param) / "policy.onnx"
    report = export.to_onnx(agent, path)
    return request.param, agent, path, report


@pytest.mark.parametrize("batch", [1, 1000])
def test_onnx_actions_match_agent(agent_and_onnx, batch):
    kind, agent, path, report = agent_and_onnx
    assert report.verified_observations > 0
    obs = np.random.default_rng(batch).normal(size=(batch, 5)).astype(np.float32) * 3
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(names, {"obs": obs})))
    expected = agent.predict(obs, deterministic=True)
    if kind == "box":
        assert out["action"].dtype == np.float32
        np.testing.assert_allclose(out["action"], expected, atol=1e-5)
        assert np.all(out["action"] >= agent.action_space.low) and np.all(out["action"] <= agent.action_space.high)
        dist = agent.distribution(obs)
        np.testing.assert_allclose(out["mean"], dist.mean().numpy(), atol=1e-5)
        np.testing.assert_allclose(np.exp(out["log_std"]), dist.stddev().numpy(), rtol=1e-5)
    else:
        assert out["action"].dtype == np.int64
        np.testing.assert_array_equal(out["action"], expected)
    if kind == "discrete":
        assert set(np.unique(out["action"])) <= {2, 3, 4, 5}  # the space's start offset is applied


def test_onnx_metadata_round_trip(agent_and_onnx):
    kind, agent, path, _ = agent_and_onnx
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["keras_trpo_version"] == keras_trpo.__version__
    assert meta["obs_normalization"] == "true"
    assert meta["opset"] == str(export.DEFAULT_OPSET)
    assert int(meta["trained_timesteps"]) == agent.num_timesteps
    assert space_from_json(meta["action_space"]) == agent.action_space
    assert space_from_json(meta["observation_space"]) == agent.observation_space
    assert meta["distribution"] == agent.family.name
    assert [i.name for i in model.graph.input] == ["obs"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and dims[1].dim_value == 5  # dynamic batch


def test_tampered_onnx_fails_verification(agent_and_onnx, tmp_path):
    kind, agent, path, _ = agent_and_onnx
    model = onnx.load(str(path))
    # The largest initializer is a weight matrix; nudge one entry of it.
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 5.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    bad = tmp_path / "tampered.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ExportVerificationError, match="differ"):
        export.verify_onnx(agent, bad)
    assert export.verify_onnx(agent, path) <= 1e-5  # the untouched file still passes


def test_saved_model_loads_without_keras_trpo(tmp_path):
    agent = _trained(SPACES["box"])
    target = tmp_path / "sm"
    report = export.to_saved_model(agent, target)
    assert report.worst_difference <= 1e-5
    meta = json.loads((target / "keras_trpo_metadata.json").read_text())
    assert meta["distribution"] == "diag_gaussian"
    obs = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["keras_trpo"] = None  # any import of keras_trpo now fails
        sys.modules["keras_trpo.export"] = None
        import numpy as np, tensorflow as tf
        fn = tf.saved_model.load({str(target)!r}).signatures["serving_default"]
        out = fn(obs=tf.constant(np.load({str(tmp_path / 'obs.npy')!r})))
        np.save({str(tmp_path / 'action.npy')!r}, out["action"].numpy())
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "action.npy"), agent.predict(obs), atol=1e-5)


def test_saved_model_overwrite_is_atomic_and_refuses_foreign_dirs(tmp_path):
    agent = _trained(SPACES["discrete"], normalize=False)
    target = tmp_path / "sm"
    export.to_saved_model(agent, target, verify=False)
    export.to_saved_model(agent, target, verify=False)  # replacing an existing SavedModel is fine
    assert (target / "saved_model.pb").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]  # no temp dirs or backups left
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ExportError, match="not a SavedModel"):
        export.to_saved_model(agent, foreign)


def test_bad_targets_and_options(tmp_path):
    agent = _trained(SPACES["discrete"], normalize=False)
    with pytest.raises(ExportError, match=r"\.onnx"):
        export.to_onnx(agent, tmp_path / "policy.txt")
    with pytest.raises(ExportError, match="does not exist"):
        export.to_onnx(agent, tmp_path / "missing" / "policy.onnx")
    with pytest.raises(ExportError, match="quantize"):
        export.to_onnx(agent, tmp_path / "p.onnx", quantize="int4")
    with pytest.raises(ExportError, match="keras_trpo agent"):
        export.to_onnx(object(), tmp_path / "p.onnx")
    assert not list(tmp_path.iterdir())


def test_int8_quantisation_reports_size_and_difference(tmp_path):
    agent = _trained(SPACES["box"])
    report = export.to_onnx(agent, tmp_path / "p.onnx", quantize="int8")
    assert report.quantized_path.endswith("p.dynamic-int8.onnx") and os.path.exists(report.quantized_path)  # "int8" = dynamic
    assert 0 < report.quantized_size_bytes
    assert report.quantized_worst_action_difference is not None and report.quantized_worst_action_difference >= 0


def test_cli_exports_and_rejects_non_agent_files(tmp_path):
    agent = _trained(SPACES["discrete"], normalize=False)
    agent.save(str(tmp_path / "agent.keras"))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    ok = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--onnx", str(tmp_path / "p.onnx")],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    line = json.loads(ok.stdout.strip().splitlines()[-1])
    assert line["path"].endswith("p.onnx") and line["verified_observations"] > 0
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    bad = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "junk.keras"), "--onnx", str(tmp_path / "q.onnx")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "junk.keras" in bad.stderr and "Traceback" not in bad.stderr


def test_saved_model_converts_to_tflite_as_users_would(tmp_path):
    # Issue 20: a user's own TFLiteConverter run on the export's SavedModel gave NaN (the Keras
    # model's resource variables were left uninitialised in the flatbuffer).
    import tensorflow as tf

    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="pip install ai-edge-litert (requirements.txt)")
    agent = _trained(SPACES["box"])
    export.to_saved_model(agent, tmp_path / "sm", verify=False)
    model = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert()
    runner = litert.Interpreter(model_content=model).get_signature_runner("serving_default")
    obs = np.random.default_rng(5).normal(size=(50, 5)).astype(np.float32)
    out = runner(obs=obs)
    assert np.all(np.isfinite(out["mean"])) and np.all(np.isfinite(out["action"]))
    np.testing.assert_allclose(out["action"], agent.predict(obs), atol=1e-5)
    np.testing.assert_allclose(out["mean"], agent.distribution(obs).mean().numpy(), atol=1e-5)

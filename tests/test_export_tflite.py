"""keras_trpo.export.to_tflite: parity with the agent in ai-edge-litert, metadata in the flatbuffer, frozen
weights, int8 variants, tamper detection, bad input, the CLI."""
import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from keras_trpo import export
import keras_trpo
from keras_trpo.export import ExportError, ExportVerificationError
from keras_trpo.export.tflite import METADATA_NAME, read_metadata, with_metadata
from keras_trpo.spaces import space_from_json
from tests.envs import EXPORT_ACTION_SPACES as SPACES, EXPORT_OBS as OBS, ToyEnv

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="pip install ai-edge-litert (requirements.txt)")
from ai_edge_litert.tools import flatbuffer_utils  # noqa: E402



def _trained(action_space, obs_space=OBS, normalize=True):
    agent = keras_trpo.TRPO(lambda: ToyEnv(obs_space, action_space, episode_length=20), seed=3, n_envs=1,
                            n_steps=64, normalize_obs=normalize, value_epochs=1, jit_compile=False)
    agent.fit(128, verbose=0)  # moves weights and normaliser statistics off their initial values
    return agent


def _run(path, obs):
    """The file's serving_default signature in ai-edge-litert, independent of export's own runner."""
    runner = litert.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return runner(obs=np.asarray(obs, np.float32))


def _ops(path):
    model = flatbuffer_utils.read_model(str(path))
    return {flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators}


@pytest.fixture(scope="module")
def plain_agent():
    """Discrete actions, no normaliser: for the tests of options and errors."""
    return _trained(SPACES["discrete"], normalize=False)


@pytest.fixture(scope="module")
def box_agent():
    return _trained(SPACES["box"])


@pytest.fixture(scope="module", params=sorted(SPACES))
def exported(request, tmp_path_factory):
    agent = _trained(SPACES[request.param])
    path = tmp_path_factory.mktemp(request.param) / "policy.tflite"
    return request.param, agent, path, export.to_tflite(agent, path)


def test_actions_and_parameters_match_the_agent(exported):
    kind, agent, path, report = exported
    assert report.verified_observations == 1000 and report.worst_difference <= 1e-5  # sampled (no env id)
    for batch in (1, 1000):
        obs = np.random.default_rng(batch).normal(size=(batch, 5)).astype(np.float32) * 3
        out = _run(path, obs)
        expected = agent.predict(obs, deterministic=True)
        assert out["action"].shape == expected.shape
        if kind == "box":
            assert out["action"].dtype == np.float32
            np.testing.assert_allclose(out["action"], expected, atol=1e-5)
            dist = agent.distribution(obs)
            np.testing.assert_allclose(out["mean"], dist.mean().numpy(), atol=1e-5)
            np.testing.assert_allclose(np.exp(out["log_std"]), dist.stddev().numpy(), rtol=1e-5)
        else:
            # int32: TensorFlow Lite Micro has no int64 ARG_MAX or CAST (keras_trpo/export/graph.py)
            assert out["action"].dtype == (np.int8 if kind == "multibinary" else np.int32)
            np.testing.assert_array_equal(out["action"], expected)
            np.testing.assert_allclose(out["logits"], agent.policy_model(obs)["logits"].numpy(), atol=1e-5)


def _micro_outputs(path, arena, obs):
    """tflite-micro's interpreter on ``obs``, one row per invoke; outputs named from the signature."""
    from tflite_micro.python.tflite_micro import runtime

    model = flatbuffer_utils.read_model(str(path))
    by_tensor = {o.tensorIndex: o.name.decode() for o in model.signatureDefs[0].outputs}
    names = [by_tensor[t] for t in model.subgraphs[0].outputs]
    it = runtime.Interpreter.from_file(str(path), arena_size=arena)
    rows = []
    for x in obs:
        it.set_input(x[None], 0)
        it.invoke()
        rows.append({n: np.array(it.get_output(k))[0] for k, n in enumerate(names)})
    return {n: np.stack([r[n] for r in rows]) for n in names}


def test_runs_on_tensorflow_lite_micro(exported):
    kind, agent, path, report = exported
    resolver = path.with_name("policy.micro_op_resolver.h")
    assert report.micro_op_resolver_path == str(resolver)
    text, ops = resolver.read_text(), _ops(path)
    assert f"_OP_COUNT {len(ops)}\n" in text and all(f"// {op}\n" in text for op in ops)
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        assert "pip install tflite-micro" in report.micro_skipped
        pytest.skip("tflite-micro is not installed (pip install tflite-micro): the TFLM check is optional")
    assert report.micro_verified_observations == 1000 and report.micro_worst_difference <= 1e-5
    arena = report.micro_arena_bytes
    assert f"_ARENA_BYTES {arena}\n" in text
    obs = np.random.default_rng(9).normal(size=(200, 5)).astype(np.float32) * 3
    out = _micro_outputs(path, arena, obs)
    expected = agent.predict(obs, deterministic=True)
    if kind == "box":
        np.testing.assert_allclose(out["action"], expected, atol=1e-5)
        np.testing.assert_allclose(out["mean"], agent.distribution(obs).mean().numpy(), atol=1e-5)
    else:
        np.testing.assert_array_equal(out["action"], expected)
    with pytest.raises(RuntimeError):  # the reported arena is the smallest (to TFLM's 16-byte alignment)
        it = runtime.Interpreter.from_file(str(path), arena_size=arena - 16)
        it.set_input(obs[:1], 0)
        it.invoke()


def test_metadata_round_trip(exported):
    kind, agent, path, report = exported
    meta = read_metadata(path.read_bytes())
    assert meta == report.metadata and meta["format"] == "tflite" and "quantization" not in meta
    assert meta["keras_trpo_version"] == keras_trpo.__version__
    assert space_from_json(meta["action_space"]) == agent.action_space
    assert space_from_json(meta["observation_space"]) == agent.observation_space
    assert meta["distribution"] == agent.family.name and int(meta["trained_timesteps"]) == agent.num_timesteps
    # Written into the flatbuffer's own metadata table, beside the converter's entry.
    names = {m.name.decode() for m in flatbuffer_utils.read_model(str(path)).metadata}
    assert {METADATA_NAME, "CONVERSION_METADATA"} <= names


def test_weights_are_frozen_constants(exported):
    # Converting the SavedModel that tracks the Keras model leaves uninitialised resource
    # variables (every output NaN); the export's SavedModel must not.
    _, _, path, _ = exported
    ops = _ops(path)
    assert not ops & {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}, ops
    assert "FULLY_CONNECTED" in ops


def test_tampered_weights_fail_verification(exported, tmp_path):
    kind, agent, path, _ = exported
    model = flatbuffer_utils.read_model(str(path))
    weights = max((b for b in model.buffers if b.data is not None), key=lambda b: len(b.data))
    arr = np.frombuffer(bytes(weights.data), np.float32).copy()
    arr[: len(arr) // 2] += 3.0
    weights.data = np.frombuffer(arr.tobytes(), np.uint8)
    bad = tmp_path / "tampered.tflite"
    bad.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    with pytest.raises(ExportVerificationError, match="differ"):
        export.verify_tflite(agent, bad)
    assert export.verify_tflite(agent, path) <= 1e-5  # the untouched file still passes


def test_with_metadata_replaces_and_removes_the_entry(exported):
    _, _, path, _ = exported
    model = path.read_bytes()
    replaced = with_metadata(model, {"a": "b"})
    assert read_metadata(replaced) == {"a": "b"}
    names = [m.name.decode() for m in flatbuffer_utils.read_model_from_bytearray(bytearray(replaced)).metadata]
    assert names.count(METADATA_NAME) == 1
    assert read_metadata(with_metadata(model, None)) == {}


@pytest.mark.parametrize("mode", ["dynamic-int8", "static-int8"])
def test_int8_copies_are_smaller_and_close(tmp_path, mode, box_agent):
    agent = box_agent
    report = export.to_tflite(agent, tmp_path / "p.tflite", quantize=mode)
    q = tmp_path / f"p.{mode}.tflite"
    assert report.quantized_path == str(q) and report.quantization == mode
    assert 0 < report.quantized_size_bytes == q.stat().st_size < report.size_bytes
    meta = read_metadata(q.read_bytes())
    assert meta["quantization"] == mode and meta["distribution"] == "diag_gaussian"
    ops = _ops(q)
    if mode == "static-int8":
        # calibrated on sampled observations: this agent's env is a factory, with no env id to roll out
        assert report.quantized_calibration_observations == 1000 and meta["calibration_observations"] == "1000"
        assert {"QUANTIZE", "DEQUANTIZE"} <= ops  # int8 inside, float32 at the edges
    else:
        assert report.quantized_calibration_observations is None and "QUANTIZE" not in ops
    obs = np.random.default_rng(0).normal(size=(500, 5)).astype(np.float32)
    out = _run(q, obs)
    assert out["action"].dtype == np.float32 and out["action"].shape == (500, 3)
    err = np.abs(out["action"] - agent.predict(obs))
    assert 0 < np.median(err) < 0.1  # changed, but by a few percent of the narrowest range (2): still the policy


def test_static_int8_calibrates_on_rollouts_of_the_agents_env(tmp_path):
    agent = keras_trpo.TRPO("Pendulum-v1", seed=0)  # untrained is enough: an env id to roll out
    report = export.to_tflite(agent, tmp_path / "pendulum.tflite", quantize="static-int8")
    assert report.quantized_calibration_observations == 1000
    assert report.quantized_rollout_worst_action_difference is not None
    assert report.quantized_rollout_worst_action_difference <= report.quantized_worst_action_difference
    given = np.random.default_rng(1).normal(size=(37, 3)).astype(np.float32)
    report = export.to_tflite(agent, tmp_path / "given.tflite", quantize="static-int8", calibration_observations=given)
    assert read_metadata((tmp_path / "given.static-int8.tflite").read_bytes())["calibration_observations"] == "37"


def test_discrete_observations_and_int8_actions_keep_their_dtypes(tmp_path):
    agent = _trained(gym.spaces.Discrete(3), obs_space=gym.spaces.Discrete(6), normalize=False)
    report = export.to_tflite(agent, tmp_path / "d.tflite", quantize="static-int8")
    obs = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(_run(tmp_path / "d.tflite", obs)["action"], agent.predict(obs))
    # the one-hot of a Discrete observation is SUB/ABS/RELU (TFLite Micro has no ONE_HOT): it runs there too
    assert "ONE_HOT" not in report.micro_operators and report.micro_skipped is None
    assert report.micro_worst_difference <= 1e-5
    q = _run(tmp_path / "d.static-int8.tflite", obs)["action"]
    assert q.dtype == np.int32 and set(q) <= {0, 1, 2}
    assert report.quantized_action_mismatch_fraction is not None


def test_bad_targets_and_options(tmp_path, plain_agent):
    agent = plain_agent
    with pytest.raises(ExportError, match=r"TFLite files end in \.tflite"):
        export.to_tflite(agent, tmp_path / "policy.onnx")
    with pytest.raises(ExportError, match="does not exist"):
        export.to_tflite(agent, tmp_path / "missing" / "policy.tflite")
    with pytest.raises(ExportError, match="quantize"):
        export.to_tflite(agent, tmp_path / "p.tflite", quantize="int4")
    with pytest.raises(ExportError, match="keras_trpo agent"):
        export.to_tflite(object(), tmp_path / "p.tflite")
    with pytest.raises(ExportError, match=r"calibration_observations must have shape \(n, 5\)"):
        export.to_tflite(agent, tmp_path / "p.tflite", quantize="static-int8",
                         calibration_observations=np.zeros((9, 4)))
    with pytest.raises(ExportError, match="NaN or inf"):
        export.to_tflite(agent, tmp_path / "p.tflite", quantize="static-int8",
                         calibration_observations=np.full((9, 5), np.nan))
    with pytest.raises(ExportError, match="no file"):
        export.verify_tflite(agent, tmp_path / "nothing.tflite")
    assert not list(tmp_path.iterdir())


def test_missing_runtime_is_named(tmp_path, monkeypatch, plain_agent):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # as if not installed
    with pytest.raises(ExportError, match="pip install ai-edge-litert"):
        export.to_tflite(plain_agent, tmp_path / "p.tflite")
    assert not list(tmp_path.iterdir())


def test_cli_writes_float_and_int8_files(tmp_path, plain_agent):
    plain_agent.save(str(tmp_path / "agent.keras"))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--tflite",
                          str(tmp_path / "p.tflite"), "--quantize", "static-int8"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["path"].endswith("p.tflite") and line["verified_observations"] > 0
    assert line["quantized_path"].endswith("p.static-int8.tflite") and os.path.exists(line["quantized_path"])
    bad = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--tflite",
                          str(tmp_path / "p.tfl")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "end in .tflite" in bad.stderr and "Traceback" not in bad.stderr

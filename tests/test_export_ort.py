"""keras_trpo.export.to_ort: ORT-format files that onnxruntime loads, with the operator config and the metadata,
checked against the agent; a file that fails verification never lands at the target."""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from keras_trpo import export
import keras_trpo.export.ort as export_ort
from keras_trpo.export import ExportError, ExportVerificationError
from tests.test_export import SPACES, _trained


def _ort_session(path):
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.load_model_format", "ORT")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=["box", "discrete"])
def agent_and_ort(request, tmp_path_factory):
    agent = _trained(SPACES[request.param])
    path = tmp_path_factory.mktemp(request.param) / "policy.ort"
    return request.param, agent, path, export.to_ort(agent, path)


def test_writes_ort_format_and_operator_config(agent_and_ort):
    kind, agent, path, report = agent_and_ort
    assert path.read_bytes()[4:8] == b"ORTM"  # FlatBuffer identifier of the ORT format
    assert report.size_bytes == path.stat().st_size and report.ort_format_version == "6"
    assert report.verified_observations > 0 and report.worst_difference <= 1e-5
    config = path.with_name("policy.required_operators.config")
    assert report.operators_config_path == str(config)
    lines = config.read_text().splitlines()
    assert f"# - {path.resolve()}" in lines  # names the final file, not the temporary one
    ops = {op for line in lines if not line.startswith("#") and line
           for op in line.split(";")[2].split(",")}
    assert {"Gemm", "FusedGemm"} & ops  # the dense layers, as onnxruntime's optimiser left them
    if kind == "discrete":
        assert "ArgMax" in ops
    assert sorted(p.name for p in path.parent.iterdir()) == ["policy.ort", "policy.required_operators.config"]


@pytest.mark.parametrize("batch", [1, 1000])
def test_onnxruntime_runs_the_ort_file_like_the_agent(agent_and_ort, batch):
    kind, agent, path, _ = agent_and_ort
    obs = np.random.default_rng(batch + 7).normal(size=(batch, 5)).astype(np.float32) * 3
    session = _ort_session(path)
    names = [o.name for o in session.get_outputs()]
    out = dict(zip(names, session.run(names, {"obs": obs})))
    expected = agent.predict(obs, deterministic=True)
    if kind == "box":
        np.testing.assert_allclose(out["action"], expected, atol=1e-5)
        np.testing.assert_allclose(out["mean"], agent.distribution(obs).mean().numpy(), atol=1e-5)
    else:
        assert out["action"].dtype == np.int64
        np.testing.assert_array_equal(out["action"], expected)


def test_metadata_survives_in_the_ort_file(agent_and_ort, tmp_path):
    kind, agent, path, report = agent_and_ort
    got = _ort_session(path).get_modelmeta().custom_metadata_map
    onnx_path = tmp_path / "same.onnx"
    export.to_onnx(agent, onnx_path, verify=False)
    onnx_meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert set(got) == set(onnx_meta)
    assert {k: v for k, v in got.items() if k != "exported_at"} == {k: v for k, v in onnx_meta.items() if k != "exported_at"}
    assert got == report.metadata


def test_verify_ort_catches_another_policy(agent_and_ort, tmp_path):
    kind, agent, path, _ = agent_and_ort
    assert export.verify_ort(agent, path) <= 1e-5
    other = _trained(SPACES[kind], normalize=False)  # same spaces, other weights
    with pytest.raises(ExportVerificationError, match=r"ORT-format .*policy.ort.*differ"):
        export.verify_ort(other, path)


def test_failed_verification_leaves_no_file(tmp_path, monkeypatch):
    agent = _trained(SPACES["box"])
    import keras_trpo.export.verify as harness
    real = harness.agent_reference

    def shifted(desc, inputs, noise=None):  # the agent as if its actions were 0.01 off
        ref = real(desc, inputs, noise)
        return {**ref, "action": ref["action"] + 0.01}

    monkeypatch.setattr(harness, "agent_reference", shifted)
    with pytest.raises(ExportVerificationError, match="'action' differs"):
        export.to_ort(agent, tmp_path / "p.ort")
    assert list(tmp_path.iterdir()) == []  # neither the .ort, its config, nor a temporary directory


def test_bad_ort_targets(tmp_path):
    agent = _trained(SPACES["discrete"], normalize=False)
    with pytest.raises(ExportError, match=r"ORT-format files end in \.ort"):
        export.to_ort(agent, tmp_path / "policy.onnx")
    with pytest.raises(ExportError, match="does not exist"):
        export.to_ort(agent, tmp_path / "missing" / "policy.ort")
    with pytest.raises(ExportError, match="keras_trpo agent"):
        export.to_ort(object(), tmp_path / "p.ort")
    assert not list(tmp_path.iterdir())


def test_cli_writes_ort_and_refuses_quantize_without_onnx(tmp_path):
    agent = _trained(SPACES["discrete"], normalize=False)
    agent.save(str(tmp_path / "agent.keras"))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    ok = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--ort", str(tmp_path / "p.ort")],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    line = json.loads(ok.stdout.strip().splitlines()[-1])
    assert line["path"].endswith("p.ort") and line["verified_observations"] > 0
    assert line["operators_config_path"].endswith("p.required_operators.config")
    assert "Converting" not in ok.stdout  # onnxruntime's converter prints are not in our JSON output
    bad = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--ort", str(tmp_path / "q.ort"),
                          "--quantize", "static-int8"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--quantize needs --onnx" in bad.stderr

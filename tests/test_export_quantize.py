"""int8 quantisation of the ONNX export: dynamic and static (calibrated), what they quantise, and
that the reported action error is the one onnxruntime gives."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from keras_trpo import export
from keras_trpo.export import ExportError
from keras_trpo.export.quantize import ObservationReader, quantize_onnx
from keras_trpo.export.observations import sample_observations
from tests.test_export import SPACES, _trained


@pytest.fixture(scope="module")
def box_agent():
    return _trained(SPACES["box"])


def _ops(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _actions(path, obs, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(["action"], {"obs": obs})[0]


@pytest.mark.parametrize("mode", ["dynamic-int8", "static-int8"])
def test_quantised_copy_is_reported_with_its_true_error(box_agent, tmp_path, mode):
    obs = sample_observations(export.describe(box_agent), 500, seed=5)
    report = export.to_onnx(box_agent, tmp_path / "p.onnx", quantize=mode, verify_observations=obs)
    assert report.quantization == mode
    assert report.quantized_path == str(tmp_path / f"p.{mode}.onnx")
    assert report.quantized_size_bytes == (tmp_path / f"p.{mode}.onnx").stat().st_size
    expected = box_agent.predict(obs, deterministic=True)
    worst = float(np.max(np.abs(_actions(report.quantized_path, obs).astype(np.float64) - expected)))
    assert report.quantized_worst_action_difference == pytest.approx(worst, abs=2e-6)
    assert report.quantized_worst_action_difference > 0  # int8 is not float32
    meta = {p.key: p.value for p in onnx.load(report.quantized_path).metadata_props}
    assert meta["quantization"] == mode and meta["distribution"] == "diag_gaussian"  # export metadata kept
    if mode == "static-int8":
        assert report.quantized_calibration_observations == 1000 == int(meta["calibration_observations"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["p.onnx", f"p.{mode}.onnx"])


def test_only_weight_layers_are_quantised(box_agent, tmp_path):
    src = tmp_path / "p.onnx"
    export.to_onnx(box_agent, src, verify=False)
    dynamic = quantize_onnx(src, "dynamic-int8")
    assert "DynamicQuantizeLinear" in _ops(dynamic.path) or "MatMulInteger" in _ops(dynamic.path)
    static = quantize_onnx(src, "static-int8", calibration_observations=sample_observations(export.describe(box_agent), 200))
    model = onnx.load(static.path)
    nodes = model.graph.node
    producer = {o: n for n in nodes for o in n.output}
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    weight_ops = {"Gemm", "MatMul", "Conv"}
    # QDQ: every QuantizeLinear -> DequantizeLinear pair sits on the input or the output of a weight op;
    # the raw observation, the normaliser (Sub, Mul, Min, Max before the first layer) and log_std stay float.
    quantized = [n for n in nodes if n.op_type == "QuantizeLinear"]
    assert quantized
    for q in quantized:
        (dq,) = consumers[q.output[0]]
        made_by_weight_op = q.input[0] in producer and producer[q.input[0]].op_type in weight_ops
        feeds_weight_op = any(c.op_type in weight_ops for c in consumers[dq.output[0]])
        assert made_by_weight_op or feeds_weight_op, q.input[0]
    assert "obs" not in {q.input[0] for q in quantized}
    assert not any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                   for n in nodes if n.op_type in ("Sub", "Mul") for i in n.input)
    assert any(init.data_type == onnx.TensorProto.INT8 for init in model.graph.initializer)


@pytest.fixture(scope="module")
def calibrated(box_agent, tmp_path_factory):
    """The box agent's ONNX file, 1,000 observations, the agent's actions on them and the static-int8
    copy calibrated on them: what the two tests below share."""
    d = tmp_path_factory.mktemp("calibrated")
    src = d / "p.onnx"
    export.to_onnx(box_agent, src, verify=False)
    obs = sample_observations(export.describe(box_agent), 1000, seed=2)
    fitting = quantize_onnx(src, "static-int8", d / "fit.onnx", calibration_observations=obs)
    return src, obs, box_agent.predict(obs, deterministic=True), fitting.path


def test_static_quantisation_uses_its_calibration(calibrated, tmp_path):
    src, obs, expected, fitting = calibrated
    # Ranges from observations 1,000x too large: every real activation falls in a few int8 steps.
    wide = quantize_onnx(src, "static-int8", tmp_path / "wide.onnx", calibration_observations=obs * 1000)
    err = {path: np.max(np.abs(_actions(path, obs) - expected)) for path in (fitting, wide.path)}
    assert err[fitting] < err[wide.path] / 3


def test_static_int8_gives_the_same_actions_with_onnxruntimes_int8_kernels_as_without(calibrated):
    """onnxruntime fuses each QDQ pair into an int8 kernel; on x86 CPUs without VNNI those products
    saturate with full 8-bit weights (worst action error 0.126 instead of 0.015 on an AMD EPYC). Run
    unfused, the same file computes in float what the QDQ nodes describe: the two must agree on any CPU."""
    _, obs, expected, fitting = calibrated
    fused = _actions(fitting, obs)
    unfused = _actions(fitting, obs, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    int8_error = np.max(np.abs(fused - expected))
    assert np.max(np.abs(fused - unfused)) < int8_error / 10, (fused, unfused)
    assert 0 < int8_error < 0.05


def test_int8_is_dynamic_and_bad_modes_are_named(box_agent, tmp_path):
    report = export.to_onnx(box_agent, tmp_path / "p.onnx", quantize="int8", verify=False)
    assert report.quantization == "dynamic-int8" and report.quantized_path.endswith("p.dynamic-int8.onnx")
    with pytest.raises(ExportError, match=r"'dynamic-int8', 'static-int8'.*got 'int4'"):
        export.to_onnx(box_agent, tmp_path / "q.onnx", quantize="int4")
    with pytest.raises(ExportError, match="calibration observations"):
        quantize_onnx(tmp_path / "p.onnx", "static-int8", calibration_observations=np.zeros((0, 5), np.float32))


def test_discrete_agent_reports_changed_action_fraction(tmp_path):
    agent = _trained(SPACES["discrete"])
    report = export.to_onnx(agent, tmp_path / "p.onnx", quantize="static-int8")
    assert 0.0 <= report.quantized_action_mismatch_fraction <= 1.0
    assert report.quantized_calibration_observations == 1000  # no env id: sampled from the space instead


def test_observation_reader_gives_equal_batches():
    obs = np.arange(230 * 5, dtype=np.float64).reshape(230, 5)
    reader = ObservationReader(obs, batch=50)
    batches = []
    while (b := reader.get_next()) is not None:
        batches.append(b["obs"])
    assert [len(b) for b in batches] == [50] * 4 and all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), obs[:200])
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["obs"], obs[:50])
    assert len(ObservationReader(obs[:7], batch=50)) == 7  # fewer than a batch: one smaller batch

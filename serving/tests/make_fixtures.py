"""Tiny hand-built ONNX policies for serving/tests, made with the ``onnx`` helper API.

    python -m venv /tmp/onnxgen && /tmp/onnxgen/bin/pip install onnx numpy
    /tmp/onnxgen/bin/python serving/tests/make_fixtures.py

Writes serving/tests/fixtures/linear_*.onnx (committed) and linear_weights.json with their weights,
which the tests use to compute the expected outputs in NumPy. Each policy is one linear
layer followed by what keras-trpo's export puts after the network (ArgMax + start, clip to
the bounds, ...), with the export's metadata_props. Also a few broken files (no metadata,
wrong input name, missing output, metadata that disagrees with the graph) for the error
tests. serving's own venv has no ``onnx``: this script is run once, elsewhere.

(The fixtures without the ``linear_`` prefix come from the real exporter, see
tests/make_serving_fixtures.py.)
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
OPSET = 17
IR_VERSION = 8  # opset 17 needs IR >= 8; older onnxruntime releases refuse newer IR versions
F32, I64, I8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT8


def box(shape, low, high, dtype="float32") -> dict:
    """A Box as the export writes it: infinities as the strings "inf" / "-inf"."""
    enc = lambda v: [("inf" if x > 0 else "-inf") if np.isinf(x) else float(x) for x in np.ravel(v)]  # noqa: E731
    shape = list(shape)
    return {"type": "Box", "shape": shape, "dtype": dtype,
            "low": enc(np.broadcast_to(low, shape)), "high": enc(np.broadcast_to(high, shape))}


def metadata(obs_space: dict, act_space: dict, distribution: str, **extra) -> dict[str, str]:
    meta = {
        "keras_trpo_version": "0.1.0", "env_id": "Fixture-v0",
        "observation_space": json.dumps(obs_space), "action_space": json.dumps(act_space),
        "distribution": distribution, "obs_normalization": "false", "trained_timesteps": "1234",
        "exported_at": "2026-01-01T00:00:00+00:00", "opset": str(OPSET),
        "made_by": "serving/tests/make_fixtures.py",  # an unknown extra key: must be tolerated
    }
    meta.update(extra)
    return meta


def model(name: str, nodes, inputs, outputs, inits: dict, meta: dict | None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="make_fixtures")
    m.ir_version = IR_VERSION
    if meta:
        helper.set_model_props(m, meta)
    onnx.checker.check_model(m, full_check=True)
    return m


def linear(obs_dim: int, out_dim: int, rng: np.random.Generator, flatten: bool = False):
    """logits/mean = obs @ W + b (after a Flatten for multi-dimensional observations)."""
    w = rng.normal(size=(obs_dim, out_dim)).astype(np.float32)
    b = rng.normal(size=out_dim).astype(np.float32)
    nodes = []
    src = "obs"
    if flatten:
        nodes.append(helper.make_node("Flatten", ["obs"], ["flat"], axis=1))
        src = "flat"
    nodes += [helper.make_node("MatMul", [src, "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"])]
    return nodes, {"W": w, "b": b}


def obs_input(shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("obs", F32, ["batch", *shape])


def discrete(rng, start: int = 0, *, input_name: str = "obs", meta: bool = True, meta_shape=None):
    """Box(4) -> Discrete(2, start): logits = obs W + b, action = argmax + start."""
    nodes, w = linear(4, 2, rng)
    nodes += [helper.make_node("Identity", ["z"], ["logits"]),
              helper.make_node("ArgMax", ["z"], ["amax"], axis=1, keepdims=0),
              helper.make_node("Add", ["amax", "start"], ["action"])]
    if input_name != "obs":
        nodes[0].input[0] = input_name
    inits = {**w, "start": np.array(start, np.int64)}
    inp = helper.make_tensor_value_info(input_name, F32, ["batch", 4])
    outs = [helper.make_tensor_value_info("action", I64, ["batch"]),
            helper.make_tensor_value_info("logits", F32, ["batch", 2])]
    props = metadata(box(meta_shape or [4], -10, 10), {"type": "Discrete", "n": 2, "start": start},
                     "categorical") if meta else None
    return nodes, [inp], outs, inits, props, w


def gaussian(rng, dtype: str = "float32", *, drop_log_std: bool = False):
    """Box(5) -> Box(3): mean = obs W + b, log_std a broadcast vector, action = mean clipped.

    The outputs are listed log_std, mean, action: OnnxPolicy must look them up by name.
    """
    low = np.array([-1.0, -0.5, -2.0], np.float32)
    high = np.array([1.0, 2.0, 0.5], np.float32)
    log_std = np.array([-0.5, 0.0, -1.0], np.float32)
    nodes, w = linear(5, 3, rng)
    nodes += [helper.make_node("Identity", ["z"], ["mean"]),
              helper.make_node("Min", ["z", "high"], ["zmin"]),
              helper.make_node("Max", ["zmin", "low"], ["action"]),
              helper.make_node("Shape", ["z"], ["zshape"]),
              helper.make_node("Expand", ["log_std_vec", "zshape"], ["log_std"])]
    inits = {**w, "low": low, "high": high, "log_std_vec": log_std}
    outs = [helper.make_tensor_value_info("log_std", F32, ["batch", 3]),
            helper.make_tensor_value_info("mean", F32, ["batch", 3]),
            helper.make_tensor_value_info("action", F32, ["batch", 3])]
    if drop_log_std:
        nodes, outs = nodes[:-2], outs[1:]
    obs_space = box([5], [-np.inf, -np.inf, -1, -1, 0], [np.inf, np.inf, 1, 1, np.inf])
    props = metadata(obs_space, box([3], low, high, dtype), "diag_gaussian", obs_normalization="true")
    return nodes, [obs_input([5])], outs, inits, props, {**w, "low": low, "high": high, "log_std": log_std}


def multidiscrete(rng):
    """Box(3) -> MultiDiscrete([3, 2], start=[1, -1]): logits concatenated, argmax per slice."""
    nodes, w = linear(3, 5, rng)
    nodes += [helper.make_node("Identity", ["z"], ["logits"]),
              helper.make_node("Slice", ["z", "s0", "e0", "ax"], ["z0"]),
              helper.make_node("Slice", ["z", "s1", "e1", "ax"], ["z1"]),
              helper.make_node("ArgMax", ["z0"], ["a0"], axis=1, keepdims=1),
              helper.make_node("ArgMax", ["z1"], ["a1"], axis=1, keepdims=1),
              helper.make_node("Concat", ["a0", "a1"], ["acat"], axis=1),
              helper.make_node("Add", ["acat", "start"], ["action"])]
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    inits = {**w, "s0": i64(0), "e0": i64(3), "s1": i64(3), "e1": i64(5), "ax": i64(1), "start": i64(1, -1)}
    outs = [helper.make_tensor_value_info("action", I64, ["batch", 2]),
            helper.make_tensor_value_info("logits", F32, ["batch", 5])]
    props = metadata(box([3], -1, 1), {"type": "MultiDiscrete", "nvec": [3, 2], "start": [1, -1]},
                     "multi_categorical")
    return nodes, [obs_input([3])], outs, inits, props, w


def multibinary(rng):
    """Box(2, 3) (a 2-D observation) -> MultiBinary(4): Bernoulli logits, action = logits > 0."""
    nodes, w = linear(6, 4, rng, flatten=True)
    nodes += [helper.make_node("Identity", ["z"], ["logits"]),
              helper.make_node("Greater", ["z", "zero"], ["pos"]),
              helper.make_node("Cast", ["pos"], ["action"], to=I8)]
    inits = {**w, "zero": np.array(0.0, np.float32)}
    outs = [helper.make_tensor_value_info("action", I8, ["batch", 4]),
            helper.make_tensor_value_info("logits", F32, ["batch", 4])]
    props = metadata(box([2, 3], -5, 5, "float64"), {"type": "MultiBinary", "n": 4}, "bernoulli")
    return nodes, [obs_input([2, 3])], outs, inits, props, w


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    weights: dict[str, np.ndarray] = {}
    specs = {
        "linear_discrete": discrete(np.random.default_rng(1)),
        "linear_gaussian": gaussian(np.random.default_rng(2)),
        "linear_gaussian64": gaussian(np.random.default_rng(2), "float64"),
        "linear_multidiscrete": multidiscrete(np.random.default_rng(3)),
        "linear_multibinary": multibinary(np.random.default_rng(4)),
        # Broken on purpose, for the error tests.
        "broken_no_metadata": discrete(np.random.default_rng(1), meta=False),
        "broken_input_name": discrete(np.random.default_rng(1), input_name="input_1"),
        "broken_missing_output": gaussian(np.random.default_rng(2), drop_log_std=True),
        "broken_shape_mismatch": discrete(np.random.default_rng(1), meta_shape=[6]),
    }
    for name, (nodes, inputs, outputs, inits, props, w) in specs.items():
        m = model(name, nodes, inputs, outputs, inits, props)
        path = os.path.join(OUT, f"{name}.onnx")
        onnx.save(m, path)
        if name.startswith("linear_"):
            weights.update({f"{name}.{k}": v for k, v in w.items()})
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    # JSON rather than .npz: byte-identical on every run, readable in a diff. float32 -> float
    # -> float32 round-trips exactly.
    path = os.path.join(OUT, "linear_weights.json")
    with open(path, "w") as f:
        json.dump({k: {"dtype": str(v.dtype), "value": v.tolist()} for k, v in sorted(weights.items())}, f, indent=0)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""stateful_recurrent.tflite and stateful_dict.tflite: the hand-built stateful_*.onnx policies
(make_fixtures.py --stateful) again as TFLite flatbuffers, written op by op with the TFLite
schema's object API (no TensorFlow), with the same weights (stateful_weights.json) and the ONNX
files' metadata, so LiteRtPolicy is tested on the recurrent and Dict contract too. Runs in
serving's own venv (numpy, onnxruntime, ai-edge-litert):

    python keras_trpo_serving/tests/make_stateful_tflite.py
"""
from __future__ import annotations

import json
import os

import flatbuffers
import numpy as np
import onnxruntime as ort
from ai_edge_litert import schema_py_generated as tfl

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
METADATA_NAME = "KERAS_TRPO_METADATA"  # keras_trpo_serving/litert_policy.py reads it
_TYPES = {np.dtype(np.float32): tfl.TensorType.FLOAT32, np.dtype(np.int32): tfl.TensorType.INT32,
          np.dtype(np.int64): tfl.TensorType.INT64}


class Graph:
    """One subgraph under construction: tensors, constants, operators, named inputs and outputs."""

    def __init__(self):
        self.tensors: list = []
        self.buffers = [tfl.BufferT()]  # buffer 0: the empty one every non-constant tensor uses
        self.ops: list = []
        self.codes: list[int] = []
        self.inputs: dict[str, int] = {}
        self.outputs: dict[str, int] = {}

    def tensor(self, name: str, shape, dtype=np.float32, data: np.ndarray | None = None) -> int:
        t = tfl.TensorT()
        t.name, t.type = name.encode(), _TYPES[np.dtype(dtype)]
        t.shape = [1 if d < 0 else d for d in shape]  # -1: the batch axis, resized at run time
        t.shapeSignature = list(shape)
        t.buffer = 0
        if data is not None:
            buf = tfl.BufferT()
            buf.data = np.ascontiguousarray(data, dtype).tobytes()
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, value) -> int:
        value = np.asarray(value)
        return self.tensor(name, list(value.shape), value.dtype, value)

    def op(self, code: int, inputs, outputs, options_type: int = 0, options=None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = tfl.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(code), list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def dense(self, x: int, w: np.ndarray, b: np.ndarray | None, name: str, rows: int = -1) -> int:
        """x @ w (+ b): FULLY_CONNECTED, whose weights are [out, in]."""
        out = self.tensor(name, [rows, w.shape[1]])
        bias = self.const(f"{name}/b", b.astype(np.float32)) if b is not None else -1
        self.op(tfl.BuiltinOperator.FULLY_CONNECTED, [x, self.const(f"{name}/w", w.T.astype(np.float32)), bias],
                [out], tfl.BuiltinOptions.FullyConnectedOptions, tfl.FullyConnectedOptionsT())
        return out

    def binary(self, code: int, a: int, b: int, name: str, shape) -> int:
        out = self.tensor(name, shape)
        options = {tfl.BuiltinOperator.ADD: (tfl.BuiltinOptions.AddOptions, tfl.AddOptionsT()),
                   tfl.BuiltinOperator.SUB: (tfl.BuiltinOptions.SubOptions, tfl.SubOptionsT()),
                   tfl.BuiltinOperator.MUL: (tfl.BuiltinOptions.MulOptions, tfl.MulOptionsT())}.get(code, (0, None))
        self.op(code, [a, b], [out], *options)
        return out

    def build(self, metadata: dict[str, str]) -> bytes:
        sub = tfl.SubGraphT()
        sub.tensors, sub.operators = self.tensors, self.ops
        sub.inputs, sub.outputs = list(self.inputs.values()), list(self.outputs.values())
        sub.name = b"main"
        sig = tfl.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = b"serving_default", 0

        def maps(named):
            out = []
            for name, index in named.items():
                m = tfl.TensorMapT()
                m.name, m.tensorIndex = name.encode(), index
                out.append(m)
            return out
        sig.inputs, sig.outputs = maps(self.inputs), maps(self.outputs)
        meta_buffer = tfl.BufferT()
        meta_buffer.data = json.dumps(metadata, sort_keys=True).encode()
        self.buffers.append(meta_buffer)
        meta = tfl.MetadataT()
        meta.name, meta.buffer = METADATA_NAME.encode(), len(self.buffers) - 1
        model = tfl.ModelT()
        model.version, model.description = 3, b"keras_trpo_serving/tests/make_stateful_tflite.py"
        model.operatorCodes = []
        for code in self.codes:
            c = tfl.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            model.operatorCodes.append(c)
        model.subgraphs, model.buffers, model.signatureDefs, model.metadata = [sub], self.buffers, [sig], [meta]
        builder = flatbuffers.Builder(4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def weights(name: str) -> dict[str, np.ndarray]:
    with open(os.path.join(OUT, "stateful_weights.json")) as f:
        raw = json.load(f)
    return {k[len(name) + 1:]: np.asarray(v["value"], v["dtype"]) for k, v in raw.items() if k.startswith(name + ".")}


def onnx_metadata(name: str) -> dict[str, str]:
    session = ort.InferenceSession(os.path.join(OUT, f"{name}.onnx"), providers=["CPUExecutionProvider"])
    meta = dict(session.get_modelmeta().custom_metadata_map)
    meta["made_by"] = "keras_trpo_serving/tests/make_stateful_tflite.py"
    return meta


def recurrent() -> bytes:
    """state_out = tanh(obs W + state_in U + b), logits = state_out V + c, action = argmax(logits)."""
    w, g = weights("stateful_recurrent"), Graph()
    obs, state_in = g.tensor("obs", [-1, 3]), g.tensor("state_in", [-1, 4])
    g.inputs = {"obs": obs, "state_in": state_in}
    pre = g.binary(tfl.BuiltinOperator.ADD, g.dense(obs, w["W"], w["b"], "xw"), g.dense(state_in, w["U"], None, "hu"),
                   "pre", [-1, 4])
    state_out = g.tensor("state_out", [-1, 4])
    g.op(tfl.BuiltinOperator.TANH, [pre], [state_out])
    logits = g.dense(state_out, w["V"], w["c"], "logits")
    action = g.tensor("action", [-1], np.int64)
    options = tfl.ArgMaxOptionsT()
    options.outputType = tfl.TensorType.INT64
    g.op(tfl.BuiltinOperator.ARG_MAX, [logits, g.const("axis", np.array([1], np.int32))], [action],
         tfl.BuiltinOptions.ArgMaxOptions, options)
    g.outputs = {"action": action, "logits": logits, "state_out": state_out}
    return g.build(onnx_metadata("stateful_recurrent"))


def dict_gaussian() -> bytes:
    """Dict(mode=Discrete(3, start=1), pos=Box(2)): mean = [pos, one_hot(mode - 1)] W + b,
    action = clip(mean, -1, 1), log_std broadcast to the batch."""
    w, g = weights("stateful_dict"), Graph()
    mode, pos = g.tensor("mode", [-1]), g.tensor("pos", [-1, 2])
    g.inputs = {"mode": mode, "pos": pos}
    index0 = g.binary(tfl.BuiltinOperator.SUB, mode, g.const("start", np.float32(1.0)), "mode0", [-1])
    index = g.tensor("mode_index", [-1], np.int32)
    g.op(tfl.BuiltinOperator.CAST, [index0], [index])
    hot = g.tensor("mode_hot", [-1, 3])
    options = tfl.OneHotOptionsT()
    options.axis = -1
    g.op(tfl.BuiltinOperator.ONE_HOT, [index, g.const("depth", np.int32(3)), g.const("on", np.float32(1)),
                                      g.const("off", np.float32(0))], [hot], tfl.BuiltinOptions.OneHotOptions, options)
    features = g.tensor("features", [-1, 5])
    concat = tfl.ConcatenationOptionsT()
    concat.axis = 1
    g.op(tfl.BuiltinOperator.CONCATENATION, [pos, hot], [features], tfl.BuiltinOptions.ConcatenationOptions, concat)
    mean = g.dense(features, w["W"], w["b"], "mean")
    upper = g.binary(tfl.BuiltinOperator.MINIMUM, mean, g.const("hi", np.float32(1)), "upper", [-1, 2])
    action = g.binary(tfl.BuiltinOperator.MAXIMUM, upper, g.const("lo", np.float32(-1)), "action", [-1, 2])
    zero = g.binary(tfl.BuiltinOperator.MUL, mean, g.const("zero", np.float32(0)), "zeros", [-1, 2])
    log_std = g.binary(tfl.BuiltinOperator.ADD, zero, g.const("log_std_vec", w["log_std"]), "log_std", [-1, 2])
    g.outputs = {"action": action, "mean": mean, "log_std": log_std}
    return g.build(onnx_metadata("stateful_dict"))


if __name__ == "__main__":
    for name, make in (("stateful_recurrent", recurrent), ("stateful_dict", dict_gaussian)):
        path = os.path.join(OUT, f"{name}.tflite")
        with open(path, "wb") as f:
            f.write(make())
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")

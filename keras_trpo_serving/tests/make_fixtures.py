"""Tiny hand-built ONNX policies for keras_trpo_serving/tests, made with the ``onnx`` helper API.

    python -m venv /tmp/onnxgen && /tmp/onnxgen/bin/pip install onnx numpy
    /tmp/onnxgen/bin/python keras_trpo_serving/tests/make_fixtures.py
    /tmp/onnxgen/bin/python keras_trpo_serving/tests/make_fixtures.py --stateful   # stateful_*.onnx only
    .venv/bin/python keras_trpo_serving/tests/make_fixtures.py --masked            # masked_*.onnx only (from the repo root)

Writes keras_trpo_serving/tests/fixtures/linear_*.onnx (committed) and linear_weights.json with their weights,
which the tests use to compute the expected outputs in NumPy. Each policy is one linear
layer followed by what keras-trpo's export puts after the network (ArgMax + start, clip to
the bounds, ...), with the export's metadata_props. Also a few broken files (no metadata,
wrong input name, missing output, metadata that disagrees with the graph) for the error
tests. ``--stateful`` writes stateful_*.onnx and stateful_weights.json instead: policies with
the recurrent (``state_in``/``state_out``) and Dict-observation (one input per key) contract.
``--masked`` writes masked_*.onnx and masked_weights.json: policies with the ``action_mask`` input
(issue 29; float32 ``[batch, W]``, 1 = valid, sampling.py's layouts and masked logits) for Taxi-v4's
spaces, a MultiDiscrete, a MultiBinary and a recurrent policy, and broken ones.
serving's own venv has no ``onnx``: this script is run once, elsewhere.

(The fixtures without the ``linear_`` prefix come from the real exporter, see
tests/make_serving_fixtures.py.)
"""
from __future__ import annotations

import json
import os

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
OPSET = 17
IR_VERSION = 8  # opset 17 needs IR >= 8; older onnxruntime releases refuse newer IR versions
F32, I64, I8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT8
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the masked files' metadata comes from sampling.py


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
        "made_by": "keras_trpo_serving/tests/make_fixtures.py",  # an unknown extra key: must be tolerated
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


def stateful_meta(obs_space: dict, act_space: dict, distribution: str, inputs, outputs, state_size: int = 0,
                  **extra) -> dict[str, str]:
    """The recurrent / Dict contract's extra metadata keys."""
    more = {"inputs": ",".join(inputs), "outputs": ",".join(outputs)}
    if state_size:
        more.update(recurrent="gru", state_size=str(state_size),
                    state_reset="zeros at an episode start: pass state_in = 0 (the graph does not reset)")
    return metadata(obs_space, act_space, distribution, **more, **extra)


def recurrent(rng, s: int = 4):
    """Box(3) -> Discrete(3), a one-layer tanh RNN: state_out = tanh(obs W + state_in U + b),
    logits = state_out V + c, action = argmax."""
    w = {"W": rng.normal(size=(3, s)), "U": rng.normal(size=(s, s)) * 0.5, "b": rng.normal(size=s),
         "V": rng.normal(size=(s, 3)), "c": rng.normal(size=3)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("MatMul", ["obs", "W"], ["xw"]), helper.make_node("MatMul", ["state_in", "U"], ["hu"]),
             helper.make_node("Add", ["xw", "hu"], ["pre0"]), helper.make_node("Add", ["pre0", "b"], ["pre"]),
             helper.make_node("Tanh", ["pre"], ["state_out"]),
             helper.make_node("MatMul", ["state_out", "V"], ["hv"]), helper.make_node("Add", ["hv", "c"], ["logits"]),
             helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0)]
    inputs = [obs_input([3]), helper.make_tensor_value_info("state_in", F32, ["batch", s])]
    outs = [helper.make_tensor_value_info("action", I64, ["batch"]),
            helper.make_tensor_value_info("logits", F32, ["batch", 3]),
            helper.make_tensor_value_info("state_out", F32, ["batch", s])]
    props = stateful_meta(box([3], -5, 5), {"type": "Discrete", "n": 3}, "categorical", ["obs", "state_in"],
                          ["action", "logits", "state_out"], s)
    return nodes, inputs, outs, w, props, w


def dict_features(rng, out_dim: int):
    """Dict(mode=Discrete(3, start=1), pos=Box(2)) -> z = [pos, one_hot(mode - 1)] W + b."""
    w = {"W": rng.normal(size=(5, out_dim)).astype(np.float32), "b": rng.normal(size=out_dim).astype(np.float32)}
    nodes = [helper.make_node("Sub", ["mode", "mode_start"], ["mode0"]),
             helper.make_node("Cast", ["mode0"], ["mode_index"], to=I64),  # onnxruntime's OneHot wants int indices
             helper.make_node("OneHot", ["mode_index", "depth", "onehot_values"], ["mode_hot"], axis=-1),
             helper.make_node("Concat", ["pos", "mode_hot"], ["features"], axis=1),
             helper.make_node("MatMul", ["features", "W"], ["fw"]), helper.make_node("Add", ["fw", "b"], ["z"])]
    consts = {"mode_start": np.array(1.0, np.float32), "depth": np.array(3, np.int64),
              "onehot_values": np.array([0.0, 1.0], np.float32)}
    inputs = [helper.make_tensor_value_info("mode", F32, ["batch"]), helper.make_tensor_value_info("pos", F32, ["batch", 2])]
    space = {"type": "Dict", "spaces": {"mode": {"type": "Discrete", "n": 3, "start": 1}, "pos": box([2], -1, 1)}}
    return nodes, inputs, {**w, **consts}, w, space


def dict_gaussian(rng):
    """Dict(mode, pos) -> Box(2): mean = z, log_std a broadcast vector, action = clip(mean, -1, 1)."""
    nodes, inputs, inits, w, space = dict_features(rng, 2)
    log_std = np.array([-0.3, 0.2], np.float32)
    nodes += [helper.make_node("Identity", ["z"], ["mean"]),
              helper.make_node("Clip", ["z", "lo", "hi"], ["action"]),
              helper.make_node("Shape", ["z"], ["zshape"]),
              helper.make_node("Expand", ["log_std_vec", "zshape"], ["log_std"])]
    inits.update(lo=np.array(-1.0, np.float32), hi=np.array(1.0, np.float32), log_std_vec=log_std)
    outs = [helper.make_tensor_value_info(n, F32, ["batch", 2]) for n in ("action", "mean", "log_std")]
    props = stateful_meta(space, box([2], -1, 1), "diag_gaussian", ["mode", "pos"], ["action", "mean", "log_std"])
    return nodes, inputs, outs, inits, props, {**w, "log_std": log_std}


def recurrent_dict_stochastic(rng, s: int = 3):
    """Dict(mode, pos) + state -> Discrete(2), with the noise input: state_out = tanh(z + state_in U),
    logits = state_out V, sampled_action = argmax(logits - log(-log(u + 1e-20) + 1e-20)) (Gumbel-max)."""
    nodes, inputs, inits, w, space = dict_features(rng, s)
    u, v = (rng.normal(size=(s, s)) * 0.5).astype(np.float32), rng.normal(size=(s, 2)).astype(np.float32)
    nodes += [helper.make_node("MatMul", ["state_in", "U"], ["hu"]), helper.make_node("Add", ["z", "hu"], ["pre"]),
              helper.make_node("Tanh", ["pre"], ["state_out"]), helper.make_node("MatMul", ["state_out", "V"], ["logits"]),
              helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0),
              helper.make_node("Add", ["noise", "eps"], ["u1"]), helper.make_node("Log", ["u1"], ["l1"]),
              helper.make_node("Neg", ["l1"], ["nl1"]), helper.make_node("Add", ["nl1", "eps"], ["u2"]),
              helper.make_node("Log", ["u2"], ["gumbel_neg"]), helper.make_node("Sub", ["logits", "gumbel_neg"], ["perturbed"]),
              helper.make_node("ArgMax", ["perturbed"], ["sampled_action"], axis=1, keepdims=0)]
    inits.update(U=u, V=v, eps=np.array(1e-20, np.float32))
    inputs += [helper.make_tensor_value_info("state_in", F32, ["batch", s]),
               helper.make_tensor_value_info("noise", F32, ["batch", 2])]
    outs = [helper.make_tensor_value_info("action", I64, ["batch"]), helper.make_tensor_value_info("logits", F32, ["batch", 2]),
            helper.make_tensor_value_info("state_out", F32, ["batch", s]),
            helper.make_tensor_value_info("sampled_action", I64, ["batch"])]
    noise = json.dumps({"distribution": "uniform", "shape": [2], "sampled_output": "sampled_action"})
    props = stateful_meta(space, {"type": "Discrete", "n": 2}, "categorical", ["mode", "pos", "state_in", "noise"],
                          ["action", "logits", "state_out", "sampled_action"], s, noise=noise)
    return nodes, inputs, outs, inits, props, {**w, "U": u, "V": v}


def stateful_broken(rng):
    """Metadata and graph that disagree, for the load-time errors: {name: (nodes, inputs, outs, inits, props)}."""
    out = {}
    nodes, inputs, outs, inits, props, _ = recurrent(rng)
    out["stateful_broken_no_state_meta"] = (nodes, inputs, outs, inits, {k: v for k, v in props.items()
                                                                          if k not in ("recurrent", "state_size", "inputs")})
    out["stateful_broken_state_size"] = (nodes, inputs, outs, inits, {**props, "state_size": "5"})
    out["stateful_broken_no_state_out"] = (nodes, inputs, outs[:2], inits, props)
    return out


def stateful_main() -> None:
    """stateful_*.onnx and stateful_weights.json: the recurrent / Dict contract's hand-built files."""
    weights: dict[str, np.ndarray] = {}
    specs = {"stateful_recurrent": recurrent(np.random.default_rng(11)),
             "stateful_dict": dict_gaussian(np.random.default_rng(12)),
             "stateful_recurrent_dict": recurrent_dict_stochastic(np.random.default_rng(13))}
    for name, (nodes, inputs, outputs, inits, props, w) in specs.items():
        path = os.path.join(OUT, f"{name}.onnx")
        onnx.save(model(name, nodes, inputs, outputs, inits, props), path)
        weights.update({f"{name}.{k}": v for k, v in w.items()})
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    for name, (nodes, inputs, outputs, inits, props) in stateful_broken(np.random.default_rng(11)).items():
        path = os.path.join(OUT, f"{name}.onnx")
        onnx.save(model(name, nodes, inputs, outputs, inits, props), path)
        print(f"wrote {path}")
    path = os.path.join(OUT, "stateful_weights.json")
    with open(path, "w") as f:
        json.dump({k: {"dtype": str(v.dtype), "value": v.tolist()} for k, v in sorted(weights.items())}, f, indent=0)
        f.write("\n")
    print(f"wrote {path}")


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


# ----------------------------------------------------------------------------- masked policies (issue 29)
def _mask_input(width: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("action_mask", F32, ["batch", width])


def _masked_logits_nodes(src: str, out: str) -> list:
    """``out = where(action_mask > 0.5, src, MASKED_LOGIT)``: sampling.py's ``masked_logits`` (categoricals)."""
    return [helper.make_node("Greater", ["action_mask", "half"], ["valid"]),
            helper.make_node("Where", ["valid", src, "masked_logit"], [out])]


def _mask_consts() -> dict:
    from keras_trpo_serving.sampling import FORCED_LOGIT, MASKED_LOGIT
    return {"half": np.array(0.5, np.float32), "masked_logit": np.array(MASKED_LOGIT, np.float32),
            "forced_logit": np.array(FORCED_LOGIT, np.float32), "neg_forced_logit": np.array(-FORCED_LOGIT, np.float32)}


def _gumbel_nodes(scores: str, out: str) -> list:
    """``out = argmax(scores - log(-log(noise + eps) + eps))``: the contract's Gumbel-max."""
    return [helper.make_node("Add", ["noise", "eps"], ["u1"]), helper.make_node("Log", ["u1"], ["l1"]),
            helper.make_node("Neg", ["l1"], ["nl1"]), helper.make_node("Add", ["nl1", "eps"], ["u2"]),
            helper.make_node("Log", ["u2"], ["gumbel_neg"]), helper.make_node("Sub", [scores, "gumbel_neg"], ["perturbed"]),
            helper.make_node("ArgMax", ["perturbed"], [out], axis=1, keepdims=0)]


def _mask_meta(rule) -> str:
    from keras_trpo_serving.sampling import mask_metadata
    return mask_metadata(rule)


def _noise_meta(width: int) -> str:
    from keras_trpo_serving.sampling import noise_metadata
    return noise_metadata("uniform", width)


def masked_taxi(rng):
    """Taxi-v4's spaces, Discrete(500) -> Discrete(6): logits = table[obs] (one row per state), masked;
    ``action`` its argmax, ``sampled_action`` Gumbel-max with the ``noise`` input. The raw logits are
    the ``logits`` output (serving masks them itself when it samples in NumPy)."""
    from keras_trpo_serving.sampling import CategoricalRule
    table = rng.normal(size=(500, 6)).astype(np.float32)
    nodes = [helper.make_node("Cast", ["obs"], ["index"], to=I64),
             helper.make_node("Gather", ["table", "index"], ["logits"], axis=0),
             *_masked_logits_nodes("logits", "masked"),
             helper.make_node("ArgMax", ["masked"], ["action"], axis=1, keepdims=0),
             *_gumbel_nodes("masked", "sampled_action")]
    inits = {"table": table, "eps": np.array(1e-20, np.float32), **_mask_consts()}
    inputs = [helper.make_tensor_value_info("obs", F32, ["batch"]), _mask_input(6),
              helper.make_tensor_value_info("noise", F32, ["batch", 6])]
    outs = [helper.make_tensor_value_info("action", I64, ["batch"]),
            helper.make_tensor_value_info("logits", F32, ["batch", 6]),
            helper.make_tensor_value_info("sampled_action", I64, ["batch"])]
    props = metadata({"type": "Discrete", "n": 500}, {"type": "Discrete", "n": 6}, "categorical", env_id="Taxi-v4",
                     noise=_noise_meta(6), action_mask=_mask_meta(CategoricalRule(6)),
                     inputs="obs,action_mask,noise", outputs="action,logits,sampled_action")
    return nodes, inputs, outs, inits, props, {"table": table}


def masked_multidiscrete(rng):
    """Box(3) -> MultiDiscrete([3, 2], start=[1, -1]) with a mask of 3 + 2 entries; no noise input
    (serving samples in NumPy from the logits and the mask)."""
    from keras_trpo_serving.sampling import MultiCategoricalRule
    nodes, w = linear(3, 5, rng)
    nodes += [helper.make_node("Identity", ["z"], ["logits"]), *_masked_logits_nodes("z", "zm"),
              helper.make_node("Slice", ["zm", "s0", "e0", "ax"], ["z0"]),
              helper.make_node("Slice", ["zm", "s1", "e1", "ax"], ["z1"]),
              helper.make_node("ArgMax", ["z0"], ["a0"], axis=1, keepdims=1),
              helper.make_node("ArgMax", ["z1"], ["a1"], axis=1, keepdims=1),
              helper.make_node("Concat", ["a0", "a1"], ["acat"], axis=1),
              helper.make_node("Add", ["acat", "start"], ["action"])]
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    inits = {**w, "s0": i64(0), "e0": i64(3), "s1": i64(3), "e1": i64(5), "ax": i64(1), "start": i64(1, -1),
             **_mask_consts()}
    outs = [helper.make_tensor_value_info("action", I64, ["batch", 2]),
            helper.make_tensor_value_info("logits", F32, ["batch", 5])]
    rule = MultiCategoricalRule(np.array([3, 2]), np.array([1, -1]), (2,))
    props = metadata(box([3], -1, 1), {"type": "MultiDiscrete", "nvec": [3, 2], "start": [1, -1]},
                     "multi_categorical", action_mask=_mask_meta(rule))
    return nodes, [obs_input([3]), _mask_input(5)], outs, inits, props, w


def masked_multibinary(rng):
    """Box(2, 3) -> MultiBinary(4), a mask of two entries per bit ([may be 0, may be 1]): a bit that
    must be 1 gets FORCED_LOGIT, one that must be 0 -FORCED_LOGIT; ``sampled_action`` is
    ``logistic(noise) < masked logit``, then the forced bits set whatever the noise (sampling.py)."""
    from keras_trpo_serving.sampling import BernoulliRule
    nodes, w = linear(6, 4, rng, flatten=True)
    nodes += [helper.make_node("Identity", ["z"], ["logits"]),
              helper.make_node("Greater", ["action_mask", "half"], ["valid"]),
              helper.make_node("Slice", ["valid", "i0", "iw", "ax", "two"], ["may0"]),
              helper.make_node("Slice", ["valid", "i1", "iw", "ax", "two"], ["may1"]),
              helper.make_node("Not", ["may0"], ["not0"]), helper.make_node("Not", ["may1"], ["not1"]),
              helper.make_node("And", ["may1", "not0"], ["one"]), helper.make_node("And", ["may0", "not1"], ["zero"]),
              helper.make_node("Where", ["zero", "neg_forced_logit", "z"], ["z_zero"]),
              helper.make_node("Where", ["one", "forced_logit", "z_zero"], ["zm"]),
              helper.make_node("Greater", ["zm", "zero_f"], ["pos"]),
              helper.make_node("Cast", ["pos"], ["action"], to=I8),
              helper.make_node("Log", ["noise"], ["lu"]), helper.make_node("Sub", ["one_f", "noise"], ["omu"]),
              helper.make_node("Log", ["omu"], ["lomu"]), helper.make_node("Sub", ["lu", "lomu"], ["logistic"]),
              helper.make_node("Less", ["logistic", "zm"], ["drawn"]),
              helper.make_node("Or", ["drawn", "one"], ["drawn1"]), helper.make_node("Not", ["zero"], ["notzero"]),
              helper.make_node("And", ["drawn1", "notzero"], ["bits"]),
              helper.make_node("Cast", ["bits"], ["sampled_action"], to=I8)]
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    inits = {**w, "zero_f": np.array(0.0, np.float32), "one_f": np.array(1.0, np.float32),
             "i0": i64(0), "i1": i64(1), "iw": i64(8), "ax": i64(1), "two": i64(2), **_mask_consts()}
    inputs = [obs_input([2, 3]), _mask_input(8), helper.make_tensor_value_info("noise", F32, ["batch", 4])]
    outs = [helper.make_tensor_value_info("action", I8, ["batch", 4]),
            helper.make_tensor_value_info("logits", F32, ["batch", 4]),
            helper.make_tensor_value_info("sampled_action", I8, ["batch", 4])]
    props = metadata(box([2, 3], -5, 5), {"type": "MultiBinary", "n": 4}, "bernoulli",
                     noise=_noise_meta(4), action_mask=_mask_meta(BernoulliRule((4,))))
    return nodes, inputs, outs, inits, props, w


def masked_recurrent(rng, s: int = 4):
    """``recurrent`` (Box(3) + state -> Discrete(3)) with a mask of 3 entries: inputs obs, action_mask,
    state_in, in the contract's order."""
    from keras_trpo_serving.sampling import CategoricalRule
    nodes, inputs, outs, w, props, _ = recurrent(rng, s)
    nodes = nodes[:-1] + [*_masked_logits_nodes("logits", "masked"),
                          helper.make_node("ArgMax", ["masked"], ["action"], axis=1, keepdims=0)]
    inputs = [inputs[0], _mask_input(3), inputs[1]]
    props = stateful_meta(box([3], -5, 5), {"type": "Discrete", "n": 3}, "categorical",
                          ["obs", "action_mask", "state_in"], ["action", "logits", "state_out"], s,
                          action_mask=_mask_meta(CategoricalRule(3)))
    return nodes, inputs, outs, {**w, **_mask_consts()}, props, w


def masked_broken(rng) -> dict:
    """A mask input without its metadata, metadata of another width, metadata without the input."""
    nodes, inputs, outs, inits, props, _ = masked_multidiscrete(rng)
    from keras_trpo_serving.sampling import CategoricalRule
    plain = discrete(np.random.default_rng(1))
    return {"masked_broken_no_metadata": (nodes, inputs, outs, inits, {k: v for k, v in props.items() if k != "action_mask"}),
            "masked_broken_width": (nodes, inputs, outs, inits, {**props, "action_mask": _mask_meta(CategoricalRule(4))}),
            "masked_broken_no_input": plain[:4] + ({**plain[4], "action_mask": _mask_meta(CategoricalRule(2))},)}


def masked_main() -> None:
    """masked_*.onnx and masked_weights.json."""
    weights: dict[str, np.ndarray] = {}
    specs = {"masked_taxi": masked_taxi(np.random.default_rng(21)),
             "masked_multidiscrete": masked_multidiscrete(np.random.default_rng(22)),
             "masked_multibinary": masked_multibinary(np.random.default_rng(23)),
             "masked_recurrent": masked_recurrent(np.random.default_rng(24))}
    for name, (nodes, inputs, outputs, inits, props, w) in specs.items():
        path = os.path.join(OUT, f"{name}.onnx")
        onnx.save(model(name, nodes, inputs, outputs, inits, props), path)
        weights.update({f"{name}.{k}": v for k, v in w.items()})
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    for name, (nodes, inputs, outputs, inits, props) in masked_broken(np.random.default_rng(22)).items():
        path = os.path.join(OUT, f"{name}.onnx")
        onnx.save(model(name, nodes, inputs, outputs, inits, props), path)
        print(f"wrote {path}")
    path = os.path.join(OUT, "masked_weights.json")
    with open(path, "w") as f:
        json.dump({k: {"dtype": str(v.dtype), "value": v.tolist()} for k, v in sorted(weights.items())}, f, indent=0)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    {"--stateful": stateful_main, "--masked": masked_main}.get(sys.argv[1] if sys.argv[1:] else "", main)()

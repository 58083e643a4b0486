"""LiteRtPolicy.act against OnnxPolicy.act at batch 1: one policy exported to both formats.

  python -m benchmarks.litert_latency --onnx policy.onnx --tflite policy.tflite \
      [--extra policy.dynamic-int8.tflite policy.static-int8.tflite] [--calls 20000]

Runs in serving's venv (numpy, onnxruntime, ai-edge-litert; no TensorFlow). Back-to-back batch-1
calls on the same observations, the contenders taking turns in blocks of 1,000
(benchutil.interleaved) so that drift hits all alike; p50/p99 in microseconds. Also each
runtime's bare call on a ready [1, ...] array (onnxruntime's session.run with OnnxPolicy's
options; the LiteRT interpreter's set_tensor/invoke/get_tensor), i.e. what the input checks
cost. Before timing, the float files' actions are checked against each other.
"""
import argparse
import json
import os

import numpy as np

from benchmarks.benchutil import interleaved, load_average, machine_details, space_observations
from keras_trpo_serving import LiteRtPolicy, OnnxPolicy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", required=True)
    p.add_argument("--tflite", required=True, help="the same policy as --onnx, exported with --tflite")
    p.add_argument("--extra", nargs="*", default=[], help="more .tflite files to time (e.g. the int8 copies)")
    p.add_argument("--calls", type=int, default=20_000, help="timed batch-1 calls for each contender")
    a = p.parse_args()
    onnx, lite = OnnxPolicy(a.onnx), LiteRtPolicy(a.tflite)
    obs = space_observations(onnx, 1000)
    agree = np.abs(np.asarray(onnx.act(obs), np.float64) - np.asarray(lite.act(obs), np.float64)).max()
    if agree > 1e-4:
        raise SystemExit(f"{a.onnx} and {a.tflite} disagree by {agree:.3g}: not the same policy")
    session, interp = onnx.session, LiteRtPolicy(a.tflite).interpreter  # own interpreter: no lock, no checks
    runner = interp.get_signature_runner("serving_default")
    i_obs, i_act = runner.get_input_details()["obs"]["index"], runner.get_output_details()["action"]["index"]
    del runner  # it would keep the interpreter from re-allocating

    def bare_litert(o):
        interp.set_tensor(i_obs, o[None])
        interp.invoke()
        return interp.get_tensor(i_act)

    fns = {"OnnxPolicy.act": onnx.act, "LiteRtPolicy.act": lite.act,
           "bare InferenceSession.run": lambda o: session.run(["action"], {"obs": o[None]}),
           "bare LiteRT set/invoke/get": bare_litert}
    bare_litert(obs[0])  # allocate at batch 1
    for path in a.extra:
        fns[f"LiteRtPolicy.act {os.path.basename(path)}"] = LiteRtPolicy(path).act
    before = load_average()
    stats = interleaved(fns, obs, a.calls, 1000)
    result = {"onnx": a.onnx, "tflite": a.tflite, "obs_shape": list(onnx.obs_shape), "max_action_disagreement": agree,
              "latency": stats,
              "p50_ratio_litert_to_onnx": round(stats["LiteRtPolicy.act"]["p50_us"]
                                                / stats["OnnxPolicy.act"]["p50_us"], 3),
              "machine": machine_details(), "load_before": before, "load_after": load_average()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Export an agent to ONNX and ORT format and compare onnxruntime's actions with the agent's on N observations.

Prints one JSON line per format: export seconds (conversion and the export's own verification
on 2,000 observations included), file size, observations, and discrete mismatches or the worst
continuous difference of the action against ``agent.predict``, computed by onnxruntime loading
the written file.
Usage: python -m benchmarks.export_parity runs/hopper/agent.keras [--n 10000] [--out DIR] [--formats onnx ort]
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import onnxruntime as ort

from keras_trpo import export
import keras_trpo
from keras_trpo.export.observations import verification_observations


def session(path: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if path.endswith(".ort"):
        opts.add_session_config_entry("session.load_model_format", "ORT")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def parity(agent, path: str, obs: np.ndarray, agent_actions: np.ndarray) -> dict:
    actions = session(path).run(["action"], {"obs": obs})[0]
    out = {"observations": len(obs), "action_dtype": str(actions.dtype)}
    if np.issubdtype(actions.dtype, np.integer):
        out["mismatched_actions"] = int(np.sum(np.any((actions != agent_actions).reshape(len(obs), -1), axis=1)))
    else:
        out["max_abs_action_diff"] = float(np.max(np.abs(actions.astype(np.float64) - agent_actions)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent")
    p.add_argument("--n", type=int, default=10_000, help="observations: half sampled from the space, half from rollouts")
    p.add_argument("--out", default=None, help="directory for policy.onnx / policy.ort (default: a temporary one)")
    p.add_argument("--formats", nargs="+", choices=["onnx", "ort"], default=["onnx", "ort"])
    args = p.parse_args()
    agent = keras_trpo.load(args.agent)
    out_dir = args.out or tempfile.mkdtemp()
    obs = verification_observations(export.describe(agent), n_sampled=args.n // 2, n_rollout=args.n - args.n // 2, seed=123)
    agent_actions = agent.predict(obs, deterministic=True)
    for fmt in args.formats:
        path = os.path.join(out_dir, f"policy.{fmt}")
        start = time.perf_counter()
        report = (export.to_ort if fmt == "ort" else export.to_onnx)(agent, path)  # each verifies itself
        seconds = time.perf_counter() - start
        result = {"agent": args.agent, "env": agent.env_id, "format": fmt, "path": path, "export_s": round(seconds, 2),
                  "bytes": report.size_bytes, **parity(agent, path, obs, agent_actions)}
        if fmt == "ort":
            result.update(operators_config=report.operators_config_path, ort_format_version=report.ort_format_version,
                          operators=sorted({op for line in open(report.operators_config_path)
                                            if line.strip() and not line.startswith("#")
                                            for op in line.strip().split(";")[2].split(",")}))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

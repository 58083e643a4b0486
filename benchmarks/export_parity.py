"""Export an agent to ONNX and compare onnxruntime's actions with the agent's on N observations.

Prints one JSON line: export seconds, file size, observations, discrete mismatches or the
worst continuous difference of the action against ``agent.predict``.
Usage: python benchmarks/export_parity.py runs/hopper/agent.keras [--n 10000] [--out /tmp/p.onnx]
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import export  # noqa: E402
import keras_trpo  # noqa: E402
from export.verify import verification_observations  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent")
    p.add_argument("--n", type=int, default=10_000, help="observations: half sampled from the space, half from rollouts")
    p.add_argument("--out", default=None, help="ONNX path (default: a temporary file)")
    args = p.parse_args()
    agent = keras_trpo.load(args.agent)
    out = args.out or os.path.join(tempfile.mkdtemp(), "policy.onnx")
    start = time.perf_counter()
    report = export.to_onnx(agent, out)  # includes its own verification on 2,000 observations
    seconds = time.perf_counter() - start
    obs = verification_observations(agent, n_sampled=args.n // 2, n_rollout=args.n - args.n // 2, seed=123)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    onnx_actions = session.run(["action"], {"obs": obs})[0]
    agent_actions = agent.predict(obs, deterministic=True)
    result = {"agent": args.agent, "env": agent.env_id, "export_s": round(seconds, 2), "onnx_bytes": report.size_bytes,
              "observations": len(obs), "action_dtype": str(onnx_actions.dtype)}
    if np.issubdtype(onnx_actions.dtype, np.integer):
        result["mismatched_actions"] = int(np.sum(np.any((onnx_actions != agent_actions).reshape(len(obs), -1), axis=1)))
    else:
        result["max_abs_action_diff"] = float(np.max(np.abs(onnx_actions.astype(np.float64) - agent_actions)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

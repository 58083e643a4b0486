"""Export an agent to .tflite (float32, dynamic-int8, static-int8) and compare ai-edge-litert's
actions with the agent's on 10,000 observations; export times and file sizes.

Prints one JSON line. Observations: "mixed" is export_parity.py's set (5,000 sampled from the
space around the normaliser's statistics + 5,000 visited in rollouts, seed 123); "rollout" is
10,000 visited in rollouts (seed 123; greedy with 30% random actions), what the robot sees and
what static-int8 is calibrated on (1,000 others, seed 1). Continuous actions: worst, p99 and
mean absolute difference; discrete: how many of the 10,000 actions differ.

Usage: python -m benchmarks.export_parity_tflite runs/hopper/agent.keras [--n 10000] [--out-dir DIR]
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from keras_trpo import export
import keras_trpo
from keras_trpo.export.quantize import QUANTIZATIONS, quantized_path
from keras_trpo.export.tflite import litert_outputs
from keras_trpo.export.observations import rollout_observations, verification_observations


def differences(got: np.ndarray, expected: np.ndarray) -> dict:
    """Discrete: mismatched rows; continuous: worst / p99 / mean absolute difference."""
    if np.issubdtype(got.dtype, np.integer):
        return {"mismatched_actions": int(np.sum(np.any((got != expected).reshape(len(got), -1), axis=1)))}
    err = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    return {"worst": float(err.max()), "p99": float(np.percentile(err, 99)), "mean": float(err.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent")
    p.add_argument("--n", type=int, default=10_000, help="observations in each set")
    p.add_argument("--out-dir", default=None, help="where policy.tflite and its int8 copies go (default: a temp dir)")
    args = p.parse_args()
    agent = keras_trpo.load(args.agent)
    out_dir = args.out_dir or tempfile.mkdtemp()
    path = os.path.join(out_dir, "policy.tflite")
    desc = export.describe(agent)
    sets = {"mixed": verification_observations(desc, n_sampled=args.n // 2, n_rollout=args.n - args.n // 2, seed=123),
            "rollout": rollout_observations(desc, args.n, seed=123)}
    expected = {name: agent.predict(obs, deterministic=True) for name, obs in sets.items()}
    result = {"agent": args.agent, "env": agent.env_id, "observations": {k: len(v) for k, v in sets.items()}}
    # Each call converts, writes and verifies the float32 file (2,000 observations); with a
    # mode it also converts, writes and measures the int8 copy.
    for mode in (None, *QUANTIZATIONS):
        start = time.perf_counter()
        report = export.to_tflite(agent, path, quantize=mode)
        seconds = time.perf_counter() - start
        target = path if mode is None else str(quantized_path(Path(path), mode))
        name = mode or "float32"
        with open(target, "rb") as f:
            model = f.read()
        entry = {"export_s": round(seconds, 2), "bytes": len(model)}
        if mode is None:
            entry["verify_worst_difference"] = report.worst_difference
        for set_name, obs in sets.items():
            got = litert_outputs(model, desc.feeds(obs), target)["action"]
            entry[set_name] = differences(got, expected[set_name])
        result[name] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()

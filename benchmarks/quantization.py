"""float32 against dynamic-int8 and static-int8 ONNX exports of one agent: size, act latency, action error, return.

  python -m benchmarks.quantization runs/hopper/agent.keras [--n 10000] [--calls 20000] [--episodes 10] [--out DIR]

Exports the agent with ``export.to_onnx`` and quantises the file both ways with
``export.quantize_onnx`` (static: calibrated on 1,000 rollout observations, seed 1). Then, per
model:
  - size in bytes;
  - OnnxPolicy.act latency at batch 1, back-to-back, p50/p99/p99.9 in microseconds, the three
    models taking turns in blocks of 1,000 calls (benchmarks/benchutil.py's timer);
  - the action error against ``agent.predict`` on N observations (half sampled from the
    observation space, half visited by the agent; seed 123, not the calibration's), worst and
    mean, over all of them and over the visited half alone (what the robot will see);
  - the mean return of ``--episodes`` deterministic episodes played by OnnxPolicy (seeds 10000+).
Prints one JSON line per model, and a Markdown table to stderr. Runs in the project venv (it
needs the agent); the latency is measured in that process, TensorFlow idle beside it.
"""
import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import keras_trpo
from benchmarks.benchutil import interleaved, load_average, machine_details
from keras_trpo import export
from keras_trpo.export.observations import default_calibration, rollout_observations, sample_observations
from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.cli import run_episodes


def action_error(actions: np.ndarray, reference: np.ndarray) -> dict:
    d = np.abs(actions.astype(np.float64) - reference.astype(np.float64)).reshape(len(reference), -1)
    return {"worst": float(f"{d.max():.3g}"), "mean": float(f"{d.mean():.3g}")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent")
    p.add_argument("--n", type=int, default=10_000, help="observations for the action error (half sampled, half visited)")
    p.add_argument("--calls", type=int, default=20_000, help="back-to-back act calls per model")
    p.add_argument("--episodes", type=int, default=10, help="episodes per model for the mean return (0: skip)")
    p.add_argument("--out", default=None, help="directory for the three files (default: a temporary one)")
    a = p.parse_args()
    agent = keras_trpo.load(a.agent)
    out = a.out or tempfile.mkdtemp()
    os.makedirs(out, exist_ok=True)
    src = os.path.join(out, "policy.onnx")
    export.to_onnx(agent, src)
    desc = export.describe(agent)
    calib = default_calibration(desc)
    paths = {"float32": src,
             "dynamic-int8": export.quantize_onnx(src, "dynamic-int8").path,
             "static-int8": export.quantize_onnx(src, "static-int8", calibration_observations=calib).path}
    sampled = sample_observations(desc, a.n // 2, seed=123)
    visited = rollout_observations(desc, a.n - a.n // 2, seed=123)
    obs = np.concatenate([sampled, visited])
    reference = agent.predict(obs, deterministic=True)
    policies = {k: OnnxPolicy(v) for k, v in paths.items()}
    load_before = load_average()
    lat = interleaved({k: pol.act for k, pol in policies.items()}, obs[len(sampled):][:1000] if len(visited) else obs[:1000],
                      a.calls, block=1000)
    load_after = load_average()
    rows = []
    for name, pol in policies.items():
        actions = pol.act(obs)
        r = {"model": name, "path": paths[name], "bytes": os.path.getsize(paths[name]),
             "act_us": {k: lat[name][k] for k in ("calls", "p50_us", "p99_us", "p99.9_us")},
             "error_all": action_error(actions, reference), "observations": len(obs),
             "error_visited": action_error(actions[len(sampled):], reference[len(sampled):]) if len(visited) else None,
             "calibration_observations": len(calib) if name == "static-int8" else None,
             "load_before": load_before, "load_after": load_after}
        if a.episodes and agent.env_id:
            r["mean_return"] = run_episodes(pol, agent.env_id, a.episodes)["mean_return"]
        rows.append(r)
        print(json.dumps(r), flush=True)
    m = machine_details()
    table = ["| model | bytes | act p50 µs | p99 µs | p99.9 µs | worst action error (all / visited) | mean error (all / visited) | return |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        ev = r["error_visited"] or {"worst": "–", "mean": "–"}
        table.append(f"| {r['model']} | {r['bytes']:,} | {r['act_us']['p50_us']} | {r['act_us']['p99_us']} | "
                     f"{r['act_us']['p99.9_us']} | {r['error_all']['worst']} / {ev['worst']} | "
                     f"{r['error_all']['mean']} / {ev['mean']} | {r.get('mean_return', '–')} |")
    table.append(f"\n{len(obs):,} observations ({len(sampled):,} sampled, {len(visited):,} visited), "
                 f"{a.calls:,} act calls per model; {m['cpu']}, {m['cores']} cores, onnxruntime {m['onnxruntime']}; "
                 f"load average {load_before} before, {load_after} after.")
    print("\n".join(table), file=sys.stderr)


if __name__ == "__main__":
    main()

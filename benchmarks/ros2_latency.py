"""Latency of the policy as a ROS 2 node (keras_trpo_serving/ros2/) over localhost DDS, beside the same
policy called in-process, and a Hopper-v5 closed loop at its control rate (125 Hz) with its missed deadlines.

    python -m benchmarks.ros2_latency [--cartpole FILE] [--steps 3000] [--hopper-steps 1000]

Run from the repository's root in the serving venv (numpy, onnxruntime, gymnasium[mujoco], and the ros2
extra: rclpy with Fast DDS). For each policy (feed-forward CartPole-v1, recurrent CartPoleNoVel-v1, Hopper-v5):
  - ROS 2: `keras-trpo-serving ros2` in one process, the gymnasium bridge
    (`python -m keras_trpo_serving.ros2.bridge`) in another, in lockstep: the round trip is the bridge's
    observation published -> action received (two DDS hops, both executors, the policy); the node's own
    figure is observation received by the middleware -> action published (its status's latency_us).
    Default QoS (observations best effort, keep last 1).
  - in-process: ``policy.act(obs)`` on the same observations in this process (the recurrent policy reset
    at the same episode starts), timed alone with perf_counter_ns.
The first ``WARMUP`` steps of each ROS 2 run are left out (discovery, first calls).
Closed loop: Hopper-v5 stepped at 125 Hz (Gymnasium's dt = 8 ms) for --hopper-steps steps; an action that
has not arrived by the next tick is a missed deadline, whichever process was late (the env then gets the
previous action; the ticks the bridge itself started late are counted apart as overruns); the
observations go reliable with a queue of 100 there, so that every observation is answered and none lost
or replaced shifts the bridge's count of actions (the bridge matches the k-th action to the k-th observation).

Writes benchmarks/results/ros2/latency.json (atomically) and prints a Markdown table. Every number
comes with the machine's load average before and after: other jobs on a shared machine show up in p99.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

import numpy as np

from keras_trpo_serving.files import atomic_write_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "ros2")
HOPPER = os.path.join(RESULTS, "hopper_policy.onnx")  # tests/make_ros2_fixtures.py --hopper
NOVEL = os.path.join(FIXTURES, "ros2_cartpolenovel_lstm.onnx")  # tests/make_ros2_fixtures.py --novel
WARMUP = 50


def percentiles(values: Any) -> dict:
    v = np.asarray(values, np.float64)
    p50, p99 = np.percentile(v, [50, 99])
    return {"n": int(v.size), "p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1),
            "max_us": round(float(v.max()), 1), "mean_us": round(float(v.mean()), 1)}


def machine() -> dict:
    model = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.lower().startswith("model name")), model)
    except OSError:
        pass
    import onnxruntime
    import rclpy  # noqa: F401 - the version of the wheels
    from importlib.metadata import version
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "ros-rclpy": version("ros-rclpy"),
            "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)")}


def ros_run(name: str, model: str, bridge_args: list[str], node_args: list[str], env: dict, timeout: float) -> dict:
    """The node and the bridge as processes in a namespace of their own; the bridge's record."""
    ns = f"/bench_{name}_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        node_log = open(os.path.join(tmp, "node.log"), "w")
        node = subprocess.Popen([sys.executable, "-m", "keras_trpo_serving", "ros2", "--model", model, "--namespace", ns,
                                 *node_args], cwd=ROOT, env=env, stdout=node_log, stderr=subprocess.STDOUT)
        try:
            out = subprocess.run([sys.executable, "-m", "keras_trpo_serving.ros2.bridge", "--namespace", ns, *bridge_args],
                                 cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        finally:
            node.terminate()
            try:
                node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.kill()
            node_log.close()
        if out.returncode != 0:
            with open(os.path.join(tmp, "node.log")) as f:
                raise RuntimeError(f"the bridge failed for {name}: {out.stderr[-2000:]}\nnode: {f.read()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_process(model: str, record: dict) -> dict:
    """``act`` on the run's observations, reset at its episode starts, timed alone."""
    from keras_trpo_serving.load import load_policy

    policy = load_policy(model)
    obs = [np.asarray(o, np.float32) for o in record["observations"]]
    episodes = record["episode"]
    times = []
    for _ in range(3):  # three passes: the steady state, not the first calls
        for i, o in enumerate(obs):
            if i == 0 or episodes[i] != episodes[i - 1]:
                policy.reset()
            t0 = time.perf_counter_ns()
            policy.act(o)
            times.append((time.perf_counter_ns() - t0) / 1e3)
    return percentiles(times[len(obs):])


def lockstep(name: str, model: str, env_args: list[str], steps: int, env: dict) -> dict:
    record = ros_run(name, model, [*env_args, "--episodes", "100000", "--total-steps", str(steps), "--reset", "service"],
                     [], env, timeout=max(600, steps * 0.05))
    status = record["node_status"] or {}
    return {"model": os.path.relpath(model, ROOT), "steps": len(record["actions"]),
            "ros2_round_trip": percentiles(record["rtt_us"][WARMUP:]),
            "node_received_to_published": status.get("latency_us"), "node_act": status.get("act_us"),
            "in_process_act": in_process(model, record), "republished": record["republished"]}


def closed_loop(steps: int, rate_hz: float, env: dict) -> dict:
    record = ros_run("hopper125", HOPPER, ["--env", "Hopper-v5", "--episodes", "100000", "--total-steps", str(steps),
                                           "--rate-hz", str(rate_hz), "--qos", "reliable", "--reset", "service"],
                     ["--observation-qos-reliability", "reliable", "--observation-qos-depth", "100"], env, timeout=600)
    return {"model": os.path.relpath(HOPPER, ROOT), "rate_hz": rate_hz, "steps": len(record["actions"]),
            "deadline_ms": 1e3 / rate_hz, "missed_deadlines": record["missed_deadlines"],
            "bridge_overruns": record["overruns"],
            "episodes": len(record["lengths"]), "round_trip": percentiles(record["rtt_us"]),
            "node_received_to_published": (record["node_status"] or {}).get("latency_us")}


def table(result: dict) -> str:
    rows = ["| policy | ROS 2 round trip p50 / p99 (us) | node: received -> published p50 / p99 (us) | "
            "in-process act p50 / p99 (us) |", "|---|---|---|---|"]
    for name, r in result["lockstep"].items():
        rt, node, local = r["ros2_round_trip"], r["node_received_to_published"] or {}, r["in_process_act"]
        rows.append(f"| {name} ({r['steps']} steps) | {rt['p50_us']:.0f} / {rt['p99_us']:.0f} | "
                    f"{node.get('p50', float('nan')):.0f} / {node.get('p99', float('nan')):.0f} | "
                    f"{local['p50_us']:.1f} / {local['p99_us']:.1f} |")
    c = result["closed_loop"]
    rows.append("")
    rows.append(f"Hopper-v5 closed loop at {c['rate_hz']:g} Hz: {c['steps']} steps, {c['missed_deadlines']} missed "
                f"deadline(s) of {c['deadline_ms']:g} ms ({c['bridge_overruns']} tick(s) the simulator side itself "
                f"started late); on-time round trips p50 {c['round_trip']['p50_us']:.0f} us, p99 "
                f"{c['round_trip']['p99_us']:.0f} us, max {c['round_trip']['max_us']:.0f} us.")
    rows.append(f"Load average before / after: {result['load_before']} / {result['load_after']} on {result['machine']['cores']} "
                f"cores ({result['machine']['cpu']}), shared with other jobs.")
    return "\n".join(rows)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ros2_latency", description=__doc__.splitlines()[0])
    p.add_argument("--cartpole", default=os.environ.get("KERAS_TRPO_CARTPOLE_ONNX") or os.path.join(FIXTURES, "linear_discrete.onnx"),
                   help="the feed-forward CartPole-v1 policy (default: KERAS_TRPO_CARTPOLE_ONNX, else the committed "
                        "linear fixture)")
    p.add_argument("--steps", type=int, default=3000, help="lockstep steps per policy (default 3000)")
    p.add_argument("--hopper-steps", type=int, default=1000)
    p.add_argument("--rate-hz", type=float, default=125.0, help="the closed loop's rate (Hopper-v5: 125)")
    p.add_argument("--out", default=os.path.join(RESULTS, "latency.json"))
    a = p.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    result: dict[str, Any] = {"machine": machine(), "load_before": [round(x, 2) for x in os.getloadavg()],
                              "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "warmup_steps_left_out": WARMUP,
                              "note": "2-core machine shared with other jobs (the load average says how busy): "
                                      "p99 and max include their interference", "lockstep": {}}
    runs = [("CartPole-v1 feed-forward", a.cartpole, ["--env", "CartPole-v1"]),
            ("CartPoleNoVel-v1 LSTM", NOVEL, ["--env", "CartPole-v1", "--mask-indices", "1", "3"]),
            ("Hopper-v5 MLP", HOPPER, ["--env", "Hopper-v5"])]
    for name, model, env_args in runs:
        print(f"{name}: {a.steps} steps ...", file=sys.stderr, flush=True)
        result["lockstep"][name] = lockstep(name.split()[0].replace("-", "").lower(), model, env_args, a.steps, env)
    print(f"Hopper-v5 closed loop at {a.rate_hz:g} Hz ...", file=sys.stderr, flush=True)
    result["closed_loop"] = closed_loop(a.hopper_steps, a.rate_hz, env)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    atomic_write_text(a.out, json.dumps(result, indent=1) + "\n")
    text = table(result)
    atomic_write_text(os.path.splitext(a.out)[0] + ".md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""OnnxPolicy.act against a bare InferenceSession.run, and the HTTP server under 16 concurrent clients.

  python benchmarks/serving_latency.py --model policy.onnx [--calls 20000] [--requests 10000] [--clients 16]

Latency: batch-1 calls on observations from the model's metadata, the two interleaved in
blocks so that drift hits both alike; p50/p99 in microseconds. HTTP: the server runs in
its own process (`python -m serving http`) on 127.0.0.1; the clients keep their
connections alive, every answer is checked against OnnxPolicy.act, and the run stops
after --requests or --max-seconds. Needs only numpy and onnxruntime (serving's venv).
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from serving import OnnxPolicy  # noqa: E402
from serving.policy import low_latency_options  # noqa: E402


def observations(policy: OnnxPolicy, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    space = policy.observation_space
    if space.type == "Discrete":
        return rng.integers(0, space.n, size=n).astype(np.float32)
    low = np.where(np.isfinite(space.low), space.low, -1.0)
    high = np.where(np.isfinite(space.high), space.high, 1.0)
    return rng.uniform(low, high, size=(n,) + space.shape).astype(np.float32)


def latency(model: str, calls: int) -> dict:
    policy = OnnxPolicy(model)
    bare = ort.InferenceSession(model, low_latency_options(1), providers=["CPUExecutionProvider"])
    obs = observations(policy, 1000)
    t_act, t_bare = [], []
    clock = time.perf_counter_ns
    for block in range(calls // 1000):
        for o in obs:  # OnnxPolicy.act on one observation of shape obs_shape
            t = clock()
            policy.act(o)
            t_act.append(clock() - t)
        for o in obs:  # the same work with nothing around it: a [1, ...] array straight in
            x = o[None]
            t = clock()
            bare.run(["action"], {"obs": x})
            t_bare.append(clock() - t)
    p = lambda xs, q: float(np.percentile(xs, q)) / 1000  # noqa: E731  ns -> us
    return {"act_p50_us": round(p(t_act, 50), 2), "act_p99_us": round(p(t_act, 99), 2),
            "bare_run_p50_us": round(p(t_bare, 50), 2), "bare_run_p99_us": round(p(t_bare, 99), 2),
            "p50_ratio": round(p(t_act, 50) / p(t_bare, 50), 3), "calls_each": len(t_act)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_load(model: str, requests: int, clients: int, max_seconds: float) -> dict:
    policy = OnnxPolicy(model)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "serving", "http", "--model", model, "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while True:  # wait until it answers
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/healthz")
                c.getresponse().read()
                c.close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        obs = observations(policy, 1000, seed=1)
        expected = policy.act(obs)
        lock = threading.Lock()
        state = {"next": 0, "errors": 0, "wrong": 0, "latencies": []}
        stop_at = time.time() + max_seconds

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            lat = []
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= requests or time.time() > stop_at:
                    break
                k = i % len(obs)
                body = json.dumps({"obs": obs[k].tolist()})
                t = time.perf_counter()
                try:
                    conn.request("POST", "/v1/act", body=body, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    payload = json.loads(resp.read())
                    ok = resp.status == 200
                except (OSError, http.client.HTTPException, ValueError):
                    ok, payload = False, None
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                lat.append(time.perf_counter() - t)
                with lock:
                    if not ok:
                        state["errors"] += 1
                    elif not np.allclose(payload["action"], expected[k], atol=1e-5):
                        state["wrong"] += 1
            conn.close()
            with lock:
                state["latencies"] += lat

        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        lat = np.asarray(state["latencies"])
        return {"http_requests": int(len(lat)), "http_clients": clients, "http_errors": state["errors"],
                "http_wrong_actions": state["wrong"], "http_requests_per_s": round(len(lat) / wall, 1),
                "http_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 3),
                "http_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 3)}
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--calls", type=int, default=20_000, help="batch-1 calls for each of act and bare run")
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=120, help="stop the HTTP load after this long")
    a = p.parse_args()
    result = {"model": a.model, **latency(a.model, a.calls), **http_load(a.model, a.requests, a.clients, a.max_seconds)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

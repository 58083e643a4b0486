"""Control-loop latency of OnnxPolicy.act at batch 1, and the HTTP server under concurrent clients.

  python -m benchmarks.serving_latency --model policy.onnx [--table] [--no-http]
      [--calls 20000] [--calls-1khz 10000] [--calls-100hz 3000] [--requests 10000] [--clients 16]

Latency: `act` on one observation at a time, timed alone (perf_counter_ns around the call),
  - back-to-back: calls one after another;
  - paced at 1 kHz and 100 Hz: sleep until the next tick (time.sleep to a perf_counter
    deadline), then one call, as a control loop does. Caches and branch predictors go cold
    between ticks and onnxruntime's threads park, which is what a robot sees.
for two sessions: OnnxPolicy's default (one intra-op thread, no spinning, warm-up at load)
and onnxruntime's defaults (`SessionOptions()`: a thread per core, spinning, no warm-up).
The sessions take turns in blocks so that drift in the machine's load hits both alike.
With --spin-calls, also at 1 kHz busy-waiting for the tick (holding the core) instead of sleeping.
Back-to-back also times a bare `InferenceSession.run` on the same file (the cost of act's
input checks) and the first `act` after loading, over fresh loads. p50, p99, p99.9 and max
in microseconds, with the CPU, its load average before and after, and the call counts.
HTTP: the server runs in its own process (`python -m keras_trpo_serving http`) on 127.0.0.1; the clients
keep their connections alive, every answer is checked against OnnxPolicy.act, and the run
stops after --requests or --max-seconds. Needs only numpy and onnxruntime (serving's venv).
"""
import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np
import onnxruntime as ort

from benchmarks.benchutil import ROOT, interleaved, load_average, machine_details, space_observations, timed_calls
from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.onnx_policy import low_latency_options

DEFAULT, ORT_DEFAULTS, BARE = "OnnxPolicy default", "onnxruntime defaults", "bare InferenceSession.run"


def policies(model: str) -> dict[str, OnnxPolicy]:
    return {DEFAULT: OnnxPolicy(model),
            ORT_DEFAULTS: OnnxPolicy(model, sess_options=ort.SessionOptions(), warmup=0)}


def first_calls(model: str, loads: int, obs: np.ndarray, options: Callable[[], ort.SessionOptions]) -> dict:
    """The first act after a fresh load (what warm-up is for), microseconds over ``loads`` loads;
    and the first ``run`` of a fresh bare session, which has run nothing before."""
    def bare_act():
        session = ort.InferenceSession(model, options(), providers=["CPUExecutionProvider"])
        return lambda o: session.run(["action"], {"obs": o[None]})

    kinds = {DEFAULT: lambda: OnnxPolicy(model).act,
             "OnnxPolicy, warmup=0": lambda: OnnxPolicy(model, warmup=0).act,
             ORT_DEFAULTS: lambda: OnnxPolicy(model, sess_options=ort.SessionOptions(), warmup=0).act,
             "bare InferenceSession, first run": bare_act}
    out = {k: [] for k in kinds}
    for i in range(loads):
        for name, make in kinds.items():
            act = make()
            out[name] += timed_calls(act, obs[i:], 1)
            del act
    return {k: {"loads": loads, "median_us": round(float(np.median(v)) / 1000, 1),
                "max_us": round(float(np.max(v)) / 1000, 1)} for k, v in out.items()}


def latency(model: str, calls: int, calls_1khz: int, calls_100hz: int, first_call_loads: int = 20,
            spin_calls: int = 0) -> dict:
    pols = policies(model)
    obs = space_observations(pols[DEFAULT], 1000)
    def options() -> ort.SessionOptions:
        opts = low_latency_options(1)
        if pols[DEFAULT].format == "ort":
            opts.add_session_config_entry("session.load_model_format", "ORT")
        return opts

    bare = ort.InferenceSession(model, options(), providers=["CPUExecutionProvider"])
    fns = {k: p.act for k, p in pols.items()}
    back_to_back = {**fns, BARE: lambda o: bare.run(["action"], {"obs": o[None]})}
    result = {"load_before": load_average()}
    result["back_to_back"] = interleaved(back_to_back, obs, calls, block=1000)
    result["paced_1000hz"] = interleaved(fns, obs, calls_1khz, block=1000, hz=1000)
    result["paced_100hz"] = interleaved(fns, obs, calls_100hz, block=500, hz=100)
    if spin_calls:
        result["paced_1000hz_spin"] = interleaved(fns, obs, spin_calls, block=1000, hz=1000, spin=True)
    result["first_call"] = first_calls(model, first_call_loads, obs, options)
    result["load_after"] = load_average()
    b2b = result["back_to_back"]
    result["act_over_bare_p50"] = round(b2b[DEFAULT]["p50_us"] / b2b[BARE]["p50_us"], 3)
    return result


def markdown(result: dict) -> str:
    rows = ["| mode | session | calls | p50 µs | p99 µs | p99.9 µs | max µs | CPU µs/call |",
            "|---|---|--:|--:|--:|--:|--:|--:|"]
    for mode, label in (("back_to_back", "back-to-back"), ("paced_1000hz", "paced 1 kHz"), ("paced_100hz", "paced 100 Hz"),
                        ("paced_1000hz_spin", "1 kHz, busy-wait")):
        for name, s in result["latency"].get(mode, {}).items():
            rows.append(f"| {label} | {name} | {s['calls']:,} | {s['p50_us']} | {s['p99_us']} | {s['p99.9_us']} | "
                        f"{s['max_us']} | {s['cpu_us_per_call']} |")
    first = "; ".join(f"{k} {v['median_us']} µs (max {v['max_us']})" for k, v in result["latency"]["first_call"].items())
    m = result["machine"]
    return "\n".join(rows + [
        "", f"First act after loading (median of {next(iter(result['latency']['first_call'].values()))['loads']} loads): {first}.",
        f"{m['cpu']} ({m['arch']}, {m['cores']} cores), {m['os']}, Python {m['python']}, onnxruntime {m['onnxruntime']}; "
        f"load average {result['latency']['load_before']} before, {result['latency']['load_after']} after."])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_load(model: str, requests: int, clients: int, max_seconds: float) -> dict:
    policy = OnnxPolicy(model)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "keras_trpo_serving", "http", "--model", model, "--port", str(port)],
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
        obs = space_observations(policy, 1000, seed=1)
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
    p.add_argument("--model", required=True, help=".onnx or .ort file from keras-trpo's export")
    p.add_argument("--calls", type=int, default=20_000, help="back-to-back calls per session (default 20,000)")
    p.add_argument("--calls-1khz", type=int, default=10_000, help="calls per session paced at 1 kHz (default 10,000: 10 s each)")
    p.add_argument("--calls-100hz", type=int, default=3_000, help="calls per session paced at 100 Hz (default 3,000: 30 s each)")
    p.add_argument("--spin-calls", type=int, default=0,
                   help="also this many calls per session at 1 kHz busy-waiting for the tick instead of sleeping")
    p.add_argument("--first-call-loads", type=int, default=20, help="fresh loads to time the first act on (default 20)")
    p.add_argument("--no-http", action="store_true", help="skip the HTTP load test")
    p.add_argument("--table", action="store_true", help="also print the latency table as Markdown (to stderr)")
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=120, help="stop the HTTP load after this long")
    a = p.parse_args()
    result = {"model": a.model, "machine": machine_details(),
              "latency": latency(a.model, a.calls, a.calls_1khz, a.calls_100hz, a.first_call_loads, a.spin_calls)}
    if not a.no_http:
        result["http"] = http_load(a.model, a.requests, a.clients, a.max_seconds)
    print(json.dumps(result))
    if a.table:
        print(markdown(result), file=sys.stderr)


if __name__ == "__main__":
    main()

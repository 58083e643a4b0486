"""Throughput and latency of `python -m keras_trpo_serving http` under keep-alive load, measured with wrk.

  python -m benchmarks.serving_http --model policy.onnx [--clients 1 8 64] [--seconds 10] [--rounds 2]
      [--server new] [--server "new --batch-max 64 --batch-wait-us 200"] [--server old=DIR] [--out FILE.json]

Each --server is a label, optionally `=DIR` (the tree whose `serving` package to run: e.g. the old
server, `git archive <rev> serving | tar -x -C DIR`), then extra `serving http` flags after a space.
For every server and client count: start the server in its own process on 127.0.0.1 (port 0), check
one answer against OnnxPolicy.act, then run `wrk -t1 -cN -dS --latency` POSTing one observation to
/v1/act over N kept-alive connections. Rounds go through every server in turn, so drift in the
machine's load hits each alike; the table gives each cell's median over rounds (requests/s, p50, p99)
and wrk's error counts. wrk (Debian: apt-get install wrk) shares the machine's cores with the server:
the figures are for this machine as a whole, not for the server alone.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import numpy as np

from benchmarks.benchutil import ROOT, load_average, machine_details, space_observations
from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.files import atomic_write_text

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}  # wrk's latency units -> ms


@dataclass
class ServerSpec:
    label: str
    tree: str  # directory holding the `keras_trpo_serving` package to run
    flags: list[str]


def parse_server(text: str) -> ServerSpec:
    head, *flags = shlex.split(text)
    label, _, tree = head.partition("=")
    return ServerSpec(label if not flags else f"{label} {' '.join(flags)}", os.path.abspath(tree or ROOT), flags)


def start_server(spec: ServerSpec, model: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "keras_trpo_serving", "http", "--model", os.path.abspath(model), "--port", "0", *spec.flags]
    proc = subprocess.Popen(cmd, cwd=spec.tree, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for _ in range(50):
        line = proc.stderr.readline()
        match = re.search(r"on http://[0-9.]+:(\d+)", line)
        if match:
            return proc, int(match.group(1))
        if not line:
            break
    proc.kill()
    raise RuntimeError(f"{spec.label}: server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def check_answer(port: int, obs: np.ndarray, policy: OnnxPolicy) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/act", data=json.dumps({"obs": obs.tolist()}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        got = json.loads(resp.read())["action"]
    np.testing.assert_array_equal(np.asarray(got), np.asarray(policy.act(obs)).tolist())


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(port: int, clients: int, seconds: float, script: str) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}/v1/act"], capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": pct["50"], "p99_ms": pct["99"], "socket_errors": errors.group(1) if errors else "",
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def wrk_script(obs: np.ndarray, directory: str) -> str:
    path = os.path.join(directory, "act.lua")
    body = json.dumps({"obs": obs.tolist()})
    with open(path, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
    return path


def write_json(path: str, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


def table(results: dict, clients: list[int]) -> str:
    lines = ["| server | clients | requests/s | p50 ms | p99 ms | errors |", "|---|--:|--:|--:|--:|--:|"]
    for label, per in results.items():
        for c in clients:
            runs = per[str(c)]
            med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")}
            errs = sum(r["non_2xx"] for r in runs) + sum(bool(r["socket_errors"]) for r in runs)
            lines.append(f"| {label} | {c} | {med['rps']:,.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} | {errs} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--server", action="append", default=None, help="LABEL[=DIR] [serving http flags...]")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=None, help="write the raw figures as JSON here")
    args = p.parse_args()
    specs = [parse_server(s) for s in (args.server or ["new"])]
    policy = OnnxPolicy(args.model)
    obs = space_observations(policy, 1, seed=0)[0]
    results: dict = {s.label: {str(c): [] for c in args.clients} for s in specs}
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        script = wrk_script(obs, tmp)
        for r in range(args.rounds):
            for spec in specs:
                proc, port = start_server(spec, args.model)
                try:
                    check_answer(port, obs, policy)
                    for c in args.clients:
                        res = run_wrk(port, c, args.seconds, script)
                        results[spec.label][str(c)].append(res)
                        print(f"round {r} {spec.label} c={c}: {res}", file=sys.stderr, flush=True)
                        time.sleep(0.5)
                finally:
                    stop_server(proc)
    report = {"machine": machine_details(), "load_before": load_before, "load_after": load_average(),
              "seconds": args.seconds, "rounds": args.rounds, "model": args.model, "results": results}
    if args.out:
        write_json(args.out, report)
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores; load average {load_before} before, "
          f"{report['load_after']} after; wrk -t1, {args.seconds:g} s per cell, median of {args.rounds} rounds")
    print(table(results, args.clients))


if __name__ == "__main__":
    main()

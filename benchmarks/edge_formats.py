"""Every export format of one agent side by side: size, memory, act latency, worst action difference.

    python -m benchmarks.edge_formats runs/hopper/agent.keras --out /tmp/hopper_formats

Exports the agent to ONNX, ORT, .tflite (LiteRT, and TensorFlow Lite Micro when tflite-micro is
installed) and C into --out, then for each: bytes (file, or for C the host object's text), memory
(TFLM: the smallest arena; C: the stack high-water mark is measured by
keras_trpo_serving/edge/check_cortex_m4.sh), act latency at batch 1 (20,000 calls per format, formats taking
turns in blocks of 1,000) and the worst |action - agent.predict| on 10,000 observations (5,000
sampled from the space, 5,000 visited; seed 123). The C policy is timed twice: through serving's
CPolicy (ctypes, input checks) and bare, by a C loop timing each policy_act with
clock_gettime. TFLM is timed through tflite-micro's Python wrapper (set_input, invoke,
get_output), which is not what a microcontroller pays. Writes rollouts.npy (2,000 observations
the agent visits, seed 2) for check_cortex_m4.sh. Prints one JSON line per format.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

BENCH_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "policy.h"
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv)
{
    int n = atoi(argv[1]), i, j;
    float *obs = malloc(sizeof(float) * POLICY_OBS_SIZE * 64);
    double *t = malloc(sizeof(double) * n);
    policy_action_t action[POLICY_ACTION_SIZE];
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(obs, sizeof(float) * POLICY_OBS_SIZE, 64, f) != 64) return 2;
    fclose(f);
    for (i = 0; i < 1000; ++i) policy_act(obs + (i % 64) * POLICY_OBS_SIZE, action);
    for (i = 0; i < n; ++i) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        policy_act(obs + (i % 64) * POLICY_OBS_SIZE, action);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
    }
    qsort(t, n, sizeof(double), cmp);
    j = (int)(0.99 * n);
    printf("%.4f %.4f %d\n", t[n / 2], t[j], (int)action[0]);
    return 0;
}
"""


def timed(act, obs: np.ndarray, calls: int) -> list[float]:
    out = []
    for i in range(calls):
        x = obs[i % len(obs)]
        t0 = time.perf_counter()
        act(x)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent")
    p.add_argument("--out", required=True)
    p.add_argument("--calls", type=int, default=20_000)
    a = p.parse_args()
    import keras_trpo
    from keras_trpo import export
    from keras_trpo.export.observations import rollout_observations, verification_observations
    from keras_trpo_serving import LiteRtPolicy, OnnxPolicy
    from keras_trpo_serving.c_policy import CPolicy
    from keras_trpo.export import tflm

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    agent = keras_trpo.load(a.agent)
    reports = {
        "onnx": export.to_onnx(agent, out / "policy.onnx"),
        "ort": export.to_ort(agent, out / "policy.ort"),
        "tflite": export.to_tflite(agent, out / "policy.tflite"),
        "c": export.to_c(agent, out / "policy_c"),
    }
    np.save(out / "rollouts.npy", rollout_observations(export.describe(agent), 2000, seed=2))
    obs = verification_observations(export.describe(agent), 5000, 5000, seed=123)
    expected = np.asarray(agent.predict(obs, deterministic=True), np.float64)
    policies = {"onnx": OnnxPolicy(out / "policy.onnx"), "ort": OnnxPolicy(out / "policy.ort"),
                "tflite": LiteRtPolicy(out / "policy.tflite"), "c": CPolicy(out / "policy_c")}
    acts = {k: v.act for k, v in policies.items()}
    names = None
    if tflm.runtime() is not None and reports["tflite"].micro_arena_bytes:
        arena = reports["tflite"].micro_arena_bytes
        names = tflm.output_names((out / "policy.tflite").read_bytes())
        it = tflm.runtime().Interpreter.from_file(str(out / "policy.tflite"), arena_size=arena)
        action_index = names.index("action")

        def micro_act(x):
            it.set_input(np.asarray(x, np.float32)[None], 0)
            it.invoke()
            return it.get_output(action_index)[0]

        acts["tflite_micro"] = micro_act
    worst = {}
    for k, act in acts.items():
        got = np.stack([np.asarray(act(x), np.float64) for x in obs]) if k in ("tflite_micro",) else \
            np.asarray(act(obs), np.float64)
        worst[k] = float(np.max(np.abs(got.reshape(expected.shape) - expected)))
    lat = {k: [] for k in acts}
    sample = obs[5000:5064]
    for block in range(a.calls // 1000):
        for k, act in acts.items():
            lat[k] += timed(act, sample, 1000)
    # bare C: a C loop timing policy_act
    sample.astype(np.float32).tofile(out / "bench_obs.bin")
    (out / "bench.c").write_text(BENCH_C)
    from keras_trpo.export.c_build import host_fma_flags
    subprocess.run(["cc", "-std=c99", "-O2", "-ffp-contract=off", *host_fma_flags(), "-D_POSIX_C_SOURCE=199309L", f"-I{out / 'policy_c'}",
                    "-o", str(out / "bench"), str(out / "bench.c"), str(out / "policy_c" / "policy.c"), "-lm"], check=True)
    p50, p99, _ = subprocess.run([str(out / "bench"), str(a.calls), str(out / "bench_obs.bin")], check=True,
                                 capture_output=True, text=True).stdout.split()
    obj = out / "policy_c" / "policy.o"
    subprocess.run(["cc", "-std=c99", "-O2", "-c", "-o", str(obj), str(out / "policy_c" / "policy.c")], check=True)
    text = int(subprocess.run(["size", str(obj)], capture_output=True, text=True).stdout.splitlines()[1].split()[0])
    obj.unlink()
    sizes = {"onnx": reports["onnx"].size_bytes, "ort": reports["ort"].size_bytes,
             "tflite": reports["tflite"].size_bytes, "tflite_micro": reports["tflite"].size_bytes, "c": text}
    for k in acts:
        row = {"format": k, "bytes": sizes[k], "act_p50_us": round(float(np.percentile(lat[k], 50)), 2),
               "act_p99_us": round(float(np.percentile(lat[k], 99)), 2), "worst_action_difference": worst[k]}
        if k == "tflite_micro":
            row["arena_bytes"] = reports["tflite"].micro_arena_bytes
        if k == "c":
            row["bare_c_act_p50_us"], row["bare_c_act_p99_us"] = float(p50), float(p99)
            row["export_worst_difference"] = reports["c"].worst_difference
        print(json.dumps(row))
    print(json.dumps({"load_average": os.getloadavg(), "observations": len(obs), "calls": a.calls}))


if __name__ == "__main__":
    main()

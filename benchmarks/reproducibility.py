"""What makes two training runs bit-identical, and what a different CPU changes.

Each configuration trains the same agent (same env, seed and settings) in a fresh process and
prints a fingerprint: SHA-256 of the final weights and of the per-iteration history, and the
wall and CPU time. Another machine is emulated on this one by capping what the CPU-dependent
kernel pickers may use: oneDNN (ONEDNN_MAX_CPU_ISA), XLA's CPU code generator
(XLA_FLAGS=--xla_cpu_max_isa), OpenBLAS, which NumPy's matmul uses (OPENBLAS_CORETYPE), NumPy's
own SIMD dispatch (NPY_DISABLE_CPU_FEATURES), and the core count (taskset). If a setting gives
the same fingerprint with and without a cap, that setting makes the run independent of it.
"pinned" is keras_trpo.portable.PORTABLE_ENV, what `train --portable-numerics` sets.

    python -m benchmarks.reproducibility --env Pendulum-v1 --timesteps 20480 --caps onednn xla openblas numpy avx2
    python -m benchmarks.reproducibility --settings default pinned --caps one_core avx2_one_core --out results.jsonl
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

from benchmarks.benchutil import ROOT
from keras_trpo.portable import PORTABLE_ENV

# An AVX2-only x86 CPU (Haswell .. Zen 3) as seen by each kernel picker; "avx2" caps them all.
CAPS = {
    "onednn": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "xla": {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
    "openblas": {"OPENBLAS_CORETYPE": "Haswell"},
    "numpy": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},  # NumPy's own SIMD dispatch
}
CAPS["avx2"] = {k: v for caps in list(CAPS.values()) for k, v in caps.items()}
CAPS["one_core"] = {}  # a machine with another core count: the child runs under `taskset -c 0`
CAPS["avx2_one_core"] = dict(CAPS["avx2"])
# Candidate settings for results that do not depend on the CPU's instruction sets.
SETTINGS = {
    "default": ({}, {}),
    "no_onednn": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {}),
    "no_onednn_no_xla": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {"jit_compile": False}),
    "no_onednn_no_xla_op_determinism": ({"TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_TRPO_OP_DETERMINISM": "1"},
                                        {"jit_compile": False}),
    # TF's Eigen contractions call oneDNN's sgemm whatever TF_ENABLE_ONEDNN_OPTS says: pin its ISA and
    # TensorFlow's thread counts (the split of a sum across threads changes its rounding).
    "pinned": (PORTABLE_ENV, {}),
}


def child(env_id: str, timesteps: int, overrides: dict) -> dict:
    """Train in this process and return the fingerprint (run with the environment already set)."""
    from keras_trpo.quiet import quiet_tensorflow_import

    quiet_tensorflow_import(0)
    import numpy as np
    import tensorflow as tf

    if os.environ.get("KERAS_TRPO_OP_DETERMINISM") == "1":
        tf.config.experimental.enable_op_determinism()
    import keras_trpo

    agent = keras_trpo.TRPO(env_id, seed=0, **overrides)
    start = time.perf_counter()
    cpu_start = time.process_time()
    history = agent.fit(timesteps, verbose=0).history
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    weights = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in agent.get_weights())).hexdigest()
    keys = ("kl", "mean_return", "value_loss", "entropy")
    hist = hashlib.sha256(json.dumps({k: history[k] for k in keys}).encode()).hexdigest()
    return {"weights": weights[:16], "history": hist[:16], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "final_mean_return": round(float(history["mean_return"][-1]), 3)}


def run(env_id: str, timesteps: int, name: str, caps: str = "") -> dict:
    extra_env, overrides = SETTINGS[name]
    env = {**os.environ, **extra_env, **(CAPS[caps] if caps else {})}  # the cap wins over a setting's pin
    code = ("import json, sys; from benchmarks.reproducibility import child; "
            f"print(json.dumps(child({env_id!r}, {timesteps}, {overrides!r})))")
    prefix = ["taskset", "-c", "0"] if caps.endswith("one_core") else []
    proc = subprocess.run(prefix + [sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--timesteps", type=int, default=20480)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--repeats", type=int, default=2, help="native runs per setting; the same twice = reproducible")
    p.add_argument("--caps", nargs="*", default=["avx2"], choices=list(CAPS),
                   help="emulated CPUs to compare with (each one run per setting)")
    p.add_argument("--out", default=None, help="append one JSON line per run to this file")
    args = p.parse_args()
    for name in args.settings:
        for caps in [""] * args.repeats + args.caps:
            r = run(args.env, args.timesteps, name, caps)
            r.update(env=args.env, timesteps=args.timesteps, setting=name, cpu=f"capped:{caps}" if caps else "native")
            print(json.dumps(r), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

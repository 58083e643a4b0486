#!/usr/bin/env bash
# The README's results: four tasks, three seeds, keras_trpo and sb3-contrib one after the other.
# Takes about 45 minutes on 2 cores. Leave the machine otherwise idle while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results}
$PY benchmarks/compare.py CartPole-v1 --timesteps 100000 --seeds 0 1 2 --out "$OUT"
$PY benchmarks/compare.py Pendulum-v1 --timesteps 100000 --seeds 0 1 2 --out "$OUT"
$PY benchmarks/compare.py Hopper-v5 --timesteps 1000000 --seeds 0 1 2 --out "$OUT"
$PY benchmarks/compare.py HalfCheetah-v5 --timesteps 1000000 --seeds 0 1 2 --out "$OUT"
$PY benchmarks/compare.py table --out "$OUT"

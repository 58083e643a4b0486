#!/usr/bin/env bash
# HalfCheetah-v5 ablations for issue 13: keras_trpo with each sb3-contrib difference switched on, alone and together.
#   bash benchmarks/ablations.sh [SEEDS...]            (default: 0 1 2 3 4)
# Each arm's seeds go to benchmarks/results/ablations/ARM/ through seeds.py, so a rerun skips what is stored.
# Seed by seed, arms interleaved: an interrupted run leaves the arms with equal numbers of seeds.
# The baseline arm is the ten-seed campaign itself (benchmarks/results/seeds/keras_trpo/HalfCheetah-v5).
# Adam's epsilon: sb3-contrib's critic uses SB3's ActorCriticPolicy optimizer, Adam with eps=1e-5 (not
# PyTorch's 1e-8 default). Keras adds epsilon to sqrt(v) before bias correction, PyTorch after; after the
# first few hundred Adam steps (a dozen iterations) the two forms agree, so 1e-5 here is sb3-contrib's value.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results/ablations}
TASK=${TASK:-HalfCheetah-v5:1000000}
declare -A ARMS=(
  [line_search_kl]="--set line_search_kl=new_old"
  [reward_per_step]="--set reward_scaling=step"
  [adam_eps]="--set value_adam_epsilon=1e-5"
  [sb3_like]="--set line_search_kl=new_old --set reward_scaling=step --set value_adam_epsilon=1e-5"
)
ORDER=${ORDER:-"line_search_kl sb3_like reward_per_step adam_eps"}
SEEDS=${*:-0 1 2 3 4}
for seed in $SEEDS; do
  for arm in $ORDER; do
    # shellcheck disable=SC2086  # ARMS[...] is a list of options
    $PY -m benchmarks.seeds run --impl keras_trpo --task "$TASK" --seeds "$seed" --out "$OUT/$arm" ${ARMS[$arm]}
  done
done

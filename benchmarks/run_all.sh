#!/usr/bin/env bash
# The README's results: ten seeds per library on four tasks, a quiet timing set, then the statistics.
#   bash benchmarks/run_all.sh                      # everything (about 3 h for sb3-contrib's seeds alone on 2 cores)
#   KERAS_TRPO_SET="--set rollout_backend=process --set rollout_workers=2" bash benchmarks/run_all.sh
# Resumable: stored seeds are skipped, so rerun it after an interruption. The timing runs (step 2)
# measure the speed ratio: leave the machine otherwise idle while they run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
SEEDS=${SEEDS:-benchmarks/results/seeds}
TIMING=${TIMING:-benchmarks/results/timing}
TIMING_SEEDS=${TIMING_SEEDS:-0}
# 1. 10 seeds per library per env, one run at a time, each stored as it finishes.
# shellcheck disable=SC2086  # KERAS_TRPO_SET is a list of options
$PY -m benchmarks.seeds run --seeds 0-9 --out "$SEEDS" ${KERAS_TRPO_SET:-}
# 2. the timing set: both libraries one after the other per seed, same machine, same settings.
for task in CartPole-v1:100000 Pendulum-v1:100000 Hopper-v5:1000000 HalfCheetah-v5:1000000; do
  # shellcheck disable=SC2086
  $PY -m benchmarks.compare "${task%%:*}" --timesteps "${task##*:}" --seeds $TIMING_SEEDS --out "$TIMING" ${KERAS_TRPO_SET:-}
done
# 3. the README table (stdout) and figures (benchmarks/results/seeds_*.png).
$PY -m benchmarks.stats all --seeds-dir "$SEEDS" --timing "$TIMING/summary.csv"
